//! Secret scrubbing.
