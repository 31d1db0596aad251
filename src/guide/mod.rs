//! The guide: each topic in depth, one chapter a module.
//!
//! | chapter | for |
//! |---|---|
//! | [`sessions`] | session stamps and trusted browsers |
//! | [`hosts`] | blocking and async hosts, errors, JSON, tracing |
//! | [`stores`] | choosing a store, and writing your own |
//! | [`postgres`] | PostgreSQL and failover |
//! | [`keys`] | keys, sealing and rotation |
//! | [`admin`] | admin views: users, the audit trail, retention |
//! | [`passkeys`] | passkeys and security keys |
//! | [`recovery`] | reset requests, bulk resets, the command line |
//! | [`performance`] | every benchmark and its command |
//! | [`design`] | why it is built this way; where things are; fuzzing |
//! | [`threat_model`] | what the crate guarantees, and what it leaves to the host |
//! | [`stored_form`] | the bytes a store keeps |

macro_rules! chapters {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            pub mod $name {
                #![doc = include_str!($file)]
            }
        )*
    };
}

chapters! {
    sessions => "sessions.md",
    hosts => "hosts.md",
    stores => "stores.md",
    postgres => "postgres.md",
    keys => "keys.md",
    admin => "admin.md",
    passkeys => "passkeys.md",
    recovery => "recovery.md",
    performance => "performance.md",
    design => "design.md",
    threat_model => "threat_model.md",
    stored_form => "stored_form.md",
}
