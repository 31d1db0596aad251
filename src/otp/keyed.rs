//! HMAC over an 8-byte counter at the cost floor: two block compressions.
//!
//! HMAC(K, m) = H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)). The first block of each hash
//! depends only on the key, so it is compressed once, when the key is loaded,
//! and the two chaining states are kept. An OTP message is one 8-byte counter
//! and the inner digest is at most 64 bytes, so each of the remaining hashes is
//! exactly one more block: two compressions per code, nothing else.
//!
//! The pad states are as sensitive as the key (they let anyone compute codes),
//! so they are zeroized on drop.

use sha1::Digest;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::params::Algorithm;

const IPAD: u8 = 0x36;
const OPAD: u8 = 0x5c;

// FIPS 180-4 initial hash values (§5.3.1, §5.3.3, §5.3.5).
const SHA1_IV: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const SHA512_IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// The inner and outer chaining states after the key's pad blocks.
///
/// One array for every hash: the inner state then the outer, in 32-bit words
/// (SHA-1 fills 10, SHA-256 16, SHA-512 all 32, each 64-bit word as two).
/// Every byte that holds key material is a byte of this array, written when
/// the key is loaded and zeroized on drop. An enum with a variant per hash
/// left the shorter variants' spare bytes undefined, and a move copied
/// whatever stale stack bytes sat there (pad states included) into the heap,
/// where no drop cleared them: see `tests/secret_residue.rs`.
#[derive(Clone)]
pub(crate) struct KeyedHmac {
    words: [u32; 32],
    algorithm: Algorithm,
}

/// RFC 4226 §5.3 dynamic truncation of an HMAC tag, then reduction to `modulus`.
#[inline(always)]
fn truncate(tag: &[u8], modulus: u32) -> u32 {
    let offset = usize::from(tag[tag.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([tag[offset], tag[offset + 1], tag[offset + 2], tag[offset + 3]]);
    (word & 0x7fff_ffff) % modulus
}

impl KeyedHmac {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        let mut words = [0u32; 32];
        match algorithm {
            Algorithm::Sha1 => {
                let mut block = key_block::<sha1::Sha1, 64>(key);
                let (mut inner, mut outer) = pads(&mut block, SHA1_IV, sha1::block_api::compress);
                words[..5].copy_from_slice(&inner);
                words[5..10].copy_from_slice(&outer);
                inner.zeroize();
                outer.zeroize();
            }
            Algorithm::Sha256 => {
                let mut block = key_block::<sha2::Sha256, 64>(key);
                let (mut inner, mut outer) = pads(&mut block, SHA256_IV, sha2::block_api::compress256);
                words[..8].copy_from_slice(&inner);
                words[8..16].copy_from_slice(&outer);
                inner.zeroize();
                outer.zeroize();
            }
            Algorithm::Sha512 => {
                let mut block = key_block::<sha2::Sha512, 128>(key);
                let (mut inner, mut outer) = pads(&mut block, SHA512_IV, sha2::block_api::compress512);
                for (pair, word) in words.chunks_exact_mut(2).zip(inner.iter().chain(&outer)) {
                    // Truncations on purpose: the low half, then the high.
                    pair[0] = *word as u32;
                    pair[1] = (*word >> 32) as u32;
                }
                inner.zeroize();
                outer.zeroize();
            }
        }
        Self { words, algorithm }
    }

    /// `N` 32-bit words of the state from word `at`.
    #[inline(always)]
    fn state<const N: usize>(&self, at: usize) -> [u32; N] {
        let mut state = [0u32; N];
        state.copy_from_slice(&self.words[at..at + N]);
        state
    }

    /// A SHA-512 state (8 words of 64 bits) from 32-bit word `at`.
    #[inline(always)]
    fn state64(&self, at: usize) -> [u64; 8] {
        let mut state = [0u64; 8];
        for (word, pair) in state.iter_mut().zip(self.words[at..at + 16].chunks_exact(2)) {
            *word = u64::from(pair[0]) | u64::from(pair[1]) << 32;
        }
        state
    }

    /// The HOTP value of `counter` before formatting: truncated HMAC mod `modulus`.
    pub(crate) fn code(&self, counter: u64, modulus: u32) -> u32 {
        let mut out = [0u32; 1];
        self.codes(counter, modulus, &mut out);
        out[0]
    }

    /// The HOTP values of counters `first, first + 1, …` into `out` (wrapping past `u64::MAX`).
    #[inline]
    pub(crate) fn codes(&self, first: u64, modulus: u32, out: &mut [u32]) {
        match self.algorithm {
            Algorithm::Sha1 => batched::<_, 64, 20>(
                &self.state::<5>(0),
                &self.state::<5>(5),
                first,
                modulus,
                out,
                sha1::block_api::compress,
                words_be,
            ),
            Algorithm::Sha256 => batched::<_, 64, 32>(
                &self.state::<8>(0),
                &self.state::<8>(8),
                first,
                modulus,
                out,
                sha2::block_api::compress256,
                words_be,
            ),
            Algorithm::Sha512 => batched::<_, 128, 64>(
                &self.state64(0),
                &self.state64(16),
                first,
                modulus,
                out,
                sha2::block_api::compress512,
                dwords_be,
            ),
        }
    }
}

/// Candidates computed together. Each stage writes all its blocks before the
/// next stage reads any, so the SIMD loads in the compression functions never
/// wait on the narrow stores that just built their block (a store-forwarding
/// stall costs more than the block building itself).
const BATCH: usize = 4;

#[inline(always)]
fn batched<S: Copy, const B: usize, const N: usize>(
    inner: &S,
    outer: &S,
    first: u64,
    modulus: u32,
    out: &mut [u32],
    compress: fn(&mut S, &[[u8; B]]),
    digest: fn(&S) -> [u8; N],
) {
    let mut counter = first;
    for chunk in out.chunks_mut(BATCH) {
        let mut messages = [message_block::<B>(0); BATCH];
        for message in messages.iter_mut().take(chunk.len()) {
            message[..8].copy_from_slice(&counter.to_be_bytes());
            counter = counter.wrapping_add(1);
        }
        let mut inner_states = [*inner; BATCH];
        for (state, message) in inner_states.iter_mut().zip(&messages).take(chunk.len()) {
            compress(state, core::slice::from_ref(message));
        }
        let mut digests = [digest_block::<B, N>(&[0u8; N]); BATCH];
        for (block, state) in digests.iter_mut().zip(&inner_states).take(chunk.len()) {
            block[..N].copy_from_slice(&digest(state));
        }
        let mut outer_states = [*outer; BATCH];
        for (state, block) in outer_states.iter_mut().zip(&digests).take(chunk.len()) {
            compress(state, core::slice::from_ref(block));
        }
        for (code, state) in chunk.iter_mut().zip(&outer_states) {
            *code = truncate(&digest(state), modulus);
        }
    }
}

/// The key padded (or first hashed) to one block, as HMAC's K0 (RFC 2104 §2).
fn key_block<D: Digest, const B: usize>(key: &[u8]) -> [u8; B] {
    let mut block = [0u8; B];
    if key.len() > B {
        let mut digest = D::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
        digest.as_mut_slice().zeroize();
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

fn pads<S: Copy, const B: usize>(k0: &mut [u8; B], iv: S, compress: fn(&mut S, &[[u8; B]])) -> (S, S) {
    let mut ipad = *k0;
    ipad.iter_mut().for_each(|b| *b ^= IPAD);
    let mut opad = *k0;
    opad.iter_mut().for_each(|b| *b ^= OPAD);
    let mut inner = iv;
    compress(&mut inner, &[ipad]);
    let mut outer = iv;
    compress(&mut outer, &[opad]);
    k0.zeroize();
    ipad.zeroize();
    opad.zeroize();
    (inner, outer)
}

/// One final block holding the 8-byte counter, after the one-block pad: SHA padding
/// puts `0x80` after the message and the total bit length at the end.
#[inline(always)]
fn message_block<const B: usize>(counter: u64) -> [u8; B] {
    let mut block = [0u8; B];
    block[..8].copy_from_slice(&counter.to_be_bytes());
    block[8] = 0x80;
    let bits = ((B + 8) * 8) as u64;
    block[B - 8..].copy_from_slice(&bits.to_be_bytes());
    block
}

/// The outer hash's final block: the inner digest, after the one-block pad.
#[inline(always)]
fn digest_block<const B: usize, const N: usize>(digest: &[u8; N]) -> [u8; B] {
    let mut block = [0u8; B];
    block[..N].copy_from_slice(digest);
    block[N] = 0x80;
    let bits = ((B + N) * 8) as u64;
    block[B - 8..].copy_from_slice(&bits.to_be_bytes());
    block
}

#[inline(always)]
fn words_be<const W: usize, const N: usize>(state: &[u32; W]) -> [u8; N] {
    let mut out = [0u8; N];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[inline(always)]
fn dwords_be(state: &[u64; 8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (chunk, word) in out.chunks_exact_mut(8).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

impl Drop for KeyedHmac {
    fn drop(&mut self) {
        self.words.zeroize();
    }
}

impl ZeroizeOnDrop for KeyedHmac {}

#[cfg(test)]
mod tests {
    use hmac::{KeyInit, Mac};

    use super::*;

    fn reference(algorithm: Algorithm, key: &[u8], counter: u64) -> Vec<u8> {
        let msg = counter.to_be_bytes();
        match algorithm {
            Algorithm::Sha1 => {
                let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
                m.update(&msg);
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha256 => {
                let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                m.update(&msg);
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha512 => {
                let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
                m.update(&msg);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    #[test]
    fn matches_the_hmac_crate_for_every_key_length_class() {
        // Short keys, exactly one block, and longer than a block (hashed first).
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for len in [1usize, 10, 20, 63, 64, 65, 127, 128, 129, 200] {
                let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let keyed = KeyedHmac::new(algorithm, &key);
                for counter in (0u64..40).chain([0x0102_0304_0506_0708, u64::MAX]) {
                    let tag = reference(algorithm, &key, counter);
                    // u32::MAX keeps all 31 truncated bits; 40 counters move the offset over the whole tag.
                    for modulus in [1_000_000, 1_000_000_000, u32::MAX] {
                        assert_eq!(keyed.code(counter, modulus), truncate(&tag, modulus));
                    }
                }
            }
        }
    }
}
