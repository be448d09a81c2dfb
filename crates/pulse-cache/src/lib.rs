//! Local cache tier, Redis store and coherent near cache.
