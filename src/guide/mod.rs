//! The reasoning behind the crate, as documentation: what it guarantees and
//! what it leaves to the host ([`threat_model`]), and why it is built the way
//! it is ([`design`]), and how records are kept ([`stored_form`]).

pub mod threat_model {
    #![doc = include_str!("threat_model.md")]
}

pub mod design {
    #![doc = include_str!("design.md")]
}

pub mod stored_form {
    #![doc = include_str!("stored_form.md")]
}
