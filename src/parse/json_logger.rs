//! The JSON logger's files, read leniently (its lines carry a stray `}` and doubly escaped messages).
