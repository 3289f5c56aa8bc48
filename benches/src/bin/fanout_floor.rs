//! The floor of fan-out on this machine (issue 20): how many event frames per second two
//! tasks can move from one process to `SUBSCRIBERS` readers over loopback TCP when neither does
//! anything else — no database, no HTTP, no parsing: a writer that sends the same prepared chunk
//! of frames to every connection as fast as the sockets take it, and readers that only count the
//! bytes. Whatever a real server does to deliver events costs at least this.
//!
//! `fanout_floor [SUBSCRIBERS] [FRAME_BYTES] [FRAMES_PER_WRITE] [SECONDS]` (defaults 1,000,
//! 600, 140, 5): a writer runtime of one thread and a reader runtime of one thread, as
//! `events_bench` runs the server's workers and its subscribers on this machine's two cores.
//! 140 frames a write is what one wake-up of a subscriber carries at 7,000 events/s with the
//! stream's 20 ms coalescing window at 1,000 subscribers.
//!
//! It prints the frames delivered per second (X) and what X means for a stream benchmark: with
//! W writes a second and no subscriber, N subscribers need W·N deliveries a second; if
//! delivering takes the machine's whole CPU at X, writes keep at most the fraction
//! 1 / (1 + W·N / X) of the CPU, so a write-throughput cost under 10% needs X ≥ 9·W·N. It also
//! prints the frames sent per CPU-second of the sending thread alone (on loopback that includes
//! the kernel's delivery to the receiving socket): the most a server whose subscribers were on
//! other machines could send per core, if it did nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// CPU seconds (user and system) used so far by this process's threads named `name`.
fn cpu_seconds(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ, 100 on Linux
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            // Fields after the command's closing parenthesis: utime and stime are the 12th
            // and 13th of them.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .sum()
}

fn main() {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let subscribers: usize = arg(&args, 0, 1000);
    let frame_bytes: usize = arg(&args, 1, 600);
    let per_write: usize = arg(&args, 2, 140);
    let secs: f64 = arg(&args, 3, 5.0);

    let writer_rt = runtime("floor-writer");
    let reader_rt = runtime("floor-reader");
    let listener = writer_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");

    // A frame as the stream writes one: `id`, `event`, a one-line `data`, a blank line.
    let mut frame = b"id: 00000000000000001234\nevent: task.created\ndata: {".to_vec();
    frame.resize(frame_bytes.saturating_sub(3).max(frame.len()), b'x');
    frame.extend_from_slice(b"}\n\n");
    let chunk = bytes::Bytes::from(frame.repeat(per_write));

    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Connections are made one after another (a thousand at once can overflow the listen
    // queue), the listener accepting on its own runtime meanwhile.
    let accepted = writer_rt.spawn(async move {
        let mut conns = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let (s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).ok();
            conns.push(s);
        }
        conns
    });
    let readers = reader_rt.block_on(async {
        let mut conns = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            conns.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        conns
    });
    for mut s in readers {
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        reader_rt.spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => received.fetch_add(k as u64, Ordering::Relaxed),
                };
            }
        });
    }
    let writers = writer_rt.block_on(accepted).expect("accepted");
    for mut s in writers {
        let (chunk, stop) = (chunk.clone(), Arc::clone(&stop));
        writer_rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
    }
    // Let the socket buffers fill before counting.
    std::thread::sleep(Duration::from_millis(500));
    let before = received.load(Ordering::Relaxed);
    let cpu_before = cpu_seconds("floor-writer");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let bytes = received.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed().as_secs_f64();
    let writer_cpu = cpu_seconds("floor-writer") - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let frames = bytes as f64 / frame_bytes as f64;
    let x = frames / elapsed;
    println!(
        "fanout_floor: {subscribers} subscribers, {frame_bytes}-byte frames, {per_write} a write: \
         {x:.0} frames/s delivered ({:.2} GB/s); the sending side alone used {writer_cpu:.2} CPU-s \
         of {elapsed:.2} s: {:.0} frames per CPU-second sent",
        bytes as f64 / elapsed / 1e9,
        frames / writer_cpu.max(1e-9)
    );
    for w in [1000.0, 3000.0, 7000.0] {
        let need = w * subscribers as f64;
        println!(
            "  at {w:.0} writes/s without subscribers: {need:.0} deliveries/s needed; writes keep at \
             most {:.1}% of the CPU (cost ≥ {:.1}%); < 10% cost needs X ≥ {:.0}",
            100.0 / (1.0 + need / x),
            100.0 - 100.0 / (1.0 + need / x),
            9.0 * need
        );
    }
    // The runtimes' tasks end with the process.
    std::process::exit(0);
}
