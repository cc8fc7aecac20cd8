//! # portal-psa
//!
//! **Not built yet.** This crate will hold the HTTP clients for ConnectWise Manage, Autotask,
//! HaloPSA and Syncro behind `portal-core`'s PSA trait (PSA-1 to PSA-7): real authentication,
//! paging and rate-limit handling, tested against fake PSA servers that answer with the real
//! APIs' shapes. It will depend on `portal-core`, `reqwest` and `tokio`.
//!
//! Today it exports nothing, so that nothing can mistake it for a working integration.
