//! (attack tests follow)
