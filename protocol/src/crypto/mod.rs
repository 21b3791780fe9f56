//! Crypto transforms: AEAD sealing, replay protection, key derivation, optional compression,
//! the supernode identity, signatures (edge identities, community admission), and the data pipeline that composes them.

pub mod aead;
pub mod compress;
pub mod handshake;
pub mod identity;
pub mod kdf;
pub mod pipeline;
pub mod replay;
pub mod signing;

pub use aead::SessionKey;
pub use kdf::CommunityKeys;
pub use pipeline::Pipeline;
pub use replay::ReplayWindow;
