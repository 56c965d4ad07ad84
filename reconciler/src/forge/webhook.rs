//! (being written: see forge/mod.rs for the boundary this module implements)
