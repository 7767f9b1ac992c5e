//! Latchkey client SDK (in progress).
