//! Against implementations no one here wrote: `oathtool` (liboath, C), `pyotp`
//! (Python) and `zbarimg` (a QR decoder), on inputs drawn at random.
//!
//! `.ci/run` installs the tools. With `CI=true` a missing tool fails the test;
//! elsewhere the test says that it skipped and why.

use std::io::Write;
use std::process::{Command, Stdio};

use portal_mfa::otp::{Algorithm, Digits, Hotp, OtpAuthUri, Secret, Totp, TotpParams};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

/// `Some(())` if `program` runs; otherwise fails under CI, or explains the skip.
fn require(program: &str, probe: &[&str]) -> Option<()> {
    let found = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{program} is not installed; .ci/run must install it (CI=true)");
    }
    eprintln!(
        "SKIPPED: {program} is not installed (apt-get install oathtool zbar-tools librsvg2-bin; pip install pyotp)"
    );
    None
}

fn require_pyotp() -> Option<()> {
    require("python3", &["-c", "import pyotp"])
}

/// Runs `python3 -c script` with `input` on stdin; returns stdout lines.
fn python(script: &str, input: &str) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed (its error is above)");
    writer.join().unwrap().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> String {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    key: Vec<u8>,
    algorithm: Algorithm,
    digits: u8,
    period: u64,
    time: u64,
}

/// Random sets; periods up to `max_period` seconds.
fn cases(n: usize, seed: u64, max_period: u64) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(16..=64);
            let mut key = vec![0u8; len];
            rng.fill_bytes(&mut key);
            Case {
                key,
                algorithm: [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][rng.random_range(0..3)],
                digits: rng.random_range(6..=8),
                period: [30, 60, 15, 1, rng.random_range(1..=max_period)][rng.random_range(0..5)],
                // Up to the year 2500: past 2038 and 2106 too.
                time: rng.random_range(0..16_725_225_600),
            }
        })
        .collect()
}

fn ours(case: &Case) -> String {
    let params = TotpParams::new(case.algorithm, Digits::new(case.digits).unwrap(), case.period).unwrap();
    Totp::new(&Secret::from_bytes(&case.key, 128).unwrap(), params)
        .generate(case.time)
        .unwrap()
        .expose()
        .to_string()
}

#[test]
fn totp_codes_equal_oathtool_for_10000_random_sets() {
    let Some(()) = require("oathtool", &["--version"]) else {
        return;
    };
    {
        let all = cases(10_000, 1, 86_400);
        // Two workers: one process per set, as oathtool takes one key per call.
        std::thread::scope(|s| {
            for half in all.chunks(all.len() / 2) {
                s.spawn(move || {
                    for case in half {
                        let mode = match case.algorithm {
                            Algorithm::Sha256 => "sha256",
                            Algorithm::Sha512 => "sha512",
                            _ => "sha1",
                        };
                        let out = Command::new("oathtool")
                            .arg(format!("--totp={mode}"))
                            .arg(format!("--digits={}", case.digits))
                            .arg(format!("--time-step-size={}s", case.period))
                            .arg(format!("--now=@{}", case.time))
                            .arg(hex(&case.key))
                            .output()
                            .unwrap();
                        assert!(out.status.success(), "oathtool failed on {case:?}");
                        let theirs = String::from_utf8(out.stdout).unwrap();
                        assert_eq!(ours(case), theirs.trim(), "{case:?}");
                    }
                });
            }
        });
    }
}

#[test]
fn hotp_codes_equal_oathtool_for_random_counters() {
    let Some(()) = require("oathtool", &["--version"]) else {
        return;
    };
    {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..1_000 {
            let mut key = vec![0u8; rng.random_range(16..=64)];
            rng.fill_bytes(&mut key);
            let digits = rng.random_range(6..=8);
            let counter: u64 = rng.random();
            let out = Command::new("oathtool")
                .args([
                    "--hotp",
                    &format!("--digits={digits}"),
                    &format!("--counter={counter}"),
                    &hex(&key),
                ])
                .output()
                .unwrap();
            let hotp = Hotp::new(
                &Secret::from_bytes(&key, 128).unwrap(),
                Algorithm::Sha1,
                Digits::new(digits).unwrap(),
            );
            assert_eq!(
                hotp.generate(counter).expose().as_str(),
                String::from_utf8(out.stdout).unwrap().trim()
            );
        }
    }
}

#[test]
fn totp_and_hotp_codes_equal_pyotp_for_10000_random_sets() {
    let Some(()) = require_pyotp() else { return };
    {
        // pyotp accepts periods of at most 120 s.
        let all = cases(10_000, 3, 120);
        let input: String = all
            .iter()
            .map(|c| {
                let secret = Secret::from_bytes(&c.key, 128).unwrap().to_base32().to_string();
                format!(
                    "{secret} {} {} {} {}\n",
                    c.algorithm.uri_name().to_lowercase(),
                    c.digits,
                    c.period,
                    c.time
                )
            })
            .collect();
        let script = r#"
import sys, hashlib, pyotp
for line in sys.stdin:
    secret, alg, digits, period, time = line.split()
    digest = getattr(hashlib, alg)
    totp = pyotp.TOTP(secret, digits=int(digits), digest=digest, interval=int(period))
    hotp = pyotp.HOTP(secret, digits=int(digits), digest=digest)
    print(totp.at(int(time)), hotp.at(int(time)))
"#;
        let answers = python(script, &input);
        assert_eq!(answers.len(), all.len());
        for (case, answer) in all.iter().zip(&answers) {
            let (totp, hotp) = answer.split_once(' ').unwrap();
            assert_eq!(ours(case), totp, "{case:?}");
            let our_hotp = Hotp::new(
                &Secret::from_bytes(&case.key, 128).unwrap(),
                case.algorithm,
                Digits::new(case.digits).unwrap(),
            );
            assert_eq!(our_hotp.generate(case.time).expose().as_str(), hotp, "{case:?}");
        }
    }
}

const AWKWARD_NAMES: &[(&str, &str)] = &[
    ("Acme", "alice@example.com"),
    ("Acme Customer Portal", "bob smith"),
    ("Zoho Books – Vendors", "vendor+tag@supplier.example"),
    ("Ünïcødé GmbH", "Дмитрий 李雷"),
    ("a/b?c#d&e=f", "x%y 100%"),
    ("emoji 🔐", "name with 'quotes' and \"double\""),
];

#[test]
fn our_uris_parse_in_pyotp_to_the_same_enrolment() {
    let Some(()) = require_pyotp() else { return };
    {
        let mut rng = StdRng::seed_from_u64(4);
        let mut built = Vec::new();
        for (issuer, account) in AWKWARD_NAMES {
            for (algorithm, digits, period) in [
                (Algorithm::Sha1, 6, 30),
                (Algorithm::Sha256, 7, 60),
                (Algorithm::Sha512, 8, 45),
            ] {
                let secret = Secret::generate(&mut rng);
                let params = TotpParams::new(algorithm, Digits::new(digits).unwrap(), period).unwrap();
                built.push(OtpAuthUri::new(issuer, account, secret, params).unwrap());
            }
        }
        let input: String = built.iter().map(|u| format!("{}\n", u.to_uri().as_str())).collect();
        let script = r#"
import sys, pyotp
for line in sys.stdin:
    t = pyotp.parse_uri(line.strip())
    h = lambda s: s.encode().hex()
    print(t.secret, h(t.issuer), h(t.name), t.digits, t.interval, t.digest().name)
"#;
        let answers = python(script, &input);
        assert_eq!(answers.len(), built.len());
        for (uri, answer) in built.iter().zip(&answers) {
            let f: Vec<&str> = answer.split(' ').collect();
            assert_eq!(f[0], uri.secret().to_base32().as_str());
            assert_eq!(unhex(f[1]), uri.issuer().unwrap());
            assert_eq!(unhex(f[2]), uri.account());
            assert_eq!(f[3], uri.params().digits().get().to_string());
            assert_eq!(f[4], uri.params().period().to_string());
            assert_eq!(
                f[5].replace('-', ""),
                uri.params().algorithm().uri_name().to_lowercase()
            );
        }
    }
}

#[test]
fn uris_pyotp_builds_parse_here_to_the_same_enrolment() {
    let Some(()) = require_pyotp() else { return };
    {
        let input: String = AWKWARD_NAMES
            .iter()
            .map(|(i, a)| format!("{} {}\n", hex(i.as_bytes()), hex(a.as_bytes())))
            .collect();
        let script = r#"
import sys, hashlib, pyotp
for n, line in enumerate(sys.stdin):
    issuer, name = (bytes.fromhex(x).decode() for x in line.split())
    alg, digits, period = [("sha1", 6, 30), ("sha256", 7, 60), ("sha512", 8, 45)][n % 3]
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret, digits=digits, digest=getattr(hashlib, alg), interval=period, name=name, issuer=issuer).provisioning_uri()
    print(uri, secret, alg, digits, period)
"#;
        let answers = python(script, &input);
        assert_eq!(answers.len(), AWKWARD_NAMES.len());
        for ((issuer, account), answer) in AWKWARD_NAMES.iter().zip(&answers) {
            let f: Vec<&str> = answer.split(' ').collect();
            let parsed = OtpAuthUri::parse(f[0]).unwrap_or_else(|e| panic!("{e} for {}", f[0]));
            assert_eq!(parsed.issuer(), Some(*issuer));
            assert_eq!(parsed.account(), *account);
            assert_eq!(parsed.secret(), &Secret::from_base32(f[1]).unwrap());
            assert_eq!(parsed.params().algorithm().uri_name().to_lowercase(), f[2]);
            assert_eq!(parsed.params().digits().get().to_string(), f[3]);
            assert_eq!(parsed.params().period().to_string(), f[4]);
        }
    }
}

#[test]
fn our_qr_codes_decode_to_exactly_our_uri() {
    let Some(()) = require("rsvg-convert", &["--version"]).and_then(|()| require("zbarimg", &["--version"])) else {
        return;
    };
    {
        let dir = std::env::temp_dir().join(format!("portal-mfa-qr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        for (n, (issuer, account)) in AWKWARD_NAMES.iter().enumerate() {
            let params = TotpParams::new(Algorithm::Sha1, Digits::SIX, 30).unwrap();
            let uri = OtpAuthUri::new(issuer, account, Secret::generate(&mut rng), params).unwrap();
            let svg = dir.join(format!("{n}.svg"));
            let png = dir.join(format!("{n}.png"));
            std::fs::write(&svg, uri.qr_svg().unwrap().as_bytes()).unwrap();
            let converted = Command::new("rsvg-convert")
                .arg("-o")
                .arg(&png)
                .arg(&svg)
                .status()
                .unwrap();
            assert!(converted.success());
            let out = Command::new("zbarimg")
                .args(["--raw", "-q"])
                .arg(&png)
                .output()
                .unwrap();
            assert!(out.status.success(), "zbarimg found no code in {}", png.display());
            assert_eq!(
                String::from_utf8(out.stdout).unwrap().trim_end_matches('\n'),
                uri.to_uri().as_str()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
