//! Nothing of the server runs on the database's writer thread: the server hands the core
//! operations of the core (`bespin_core::Op`, built from a core function and owned values),
//! never code of its own. `Op`'s constructors take function pointers, which a closure that
//! captures nothing could still coerce to; this test keeps the server's sources free of both
//! that and of the write transaction itself.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

/// The text of each call `Op::name(…)` in `src`, arguments included.
fn op_calls(src: &str) -> Vec<&str> {
    let mut calls = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("Op::") {
        let call = &rest[at..];
        let Some(open) = call.find('(') else { break };
        let mut depth = 0;
        let mut end = call.len();
        for (i, c) in call[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        calls.push(&call[..end]);
        rest = &call[4..];
    }
    calls
}

#[test]
fn the_server_hands_the_writer_core_operations_only() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut built = 0;
    for (path, src) in &files {
        assert!(
            !src.contains("WriteTx"),
            "{path} names the write transaction"
        );
        for call in op_calls(src) {
            assert!(
                !call.contains('|'),
                "{path}: a closure handed to the writer: {call}"
            );
            built += 1;
        }
    }
    assert!(
        built > 20,
        "the writes of the routes are operations ({built} found)"
    );
}
