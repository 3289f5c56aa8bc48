//! Benchmarks live in `benches/`; `src/bin/bare_hyper.rs` is the comparison server: hyper
//! answering a fixed 60-byte JSON body, the ceiling for any endpoint on the same machine.
