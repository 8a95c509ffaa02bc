//! Connection bounds and what clients see at the edges: slow and idle clients are cut, the
//! connection cap holds (and, at the cap, waiting clients make room for fresh ones), a client
//! that writes a whole oversized body before reading still reads the 413, and a misconfigured
//! binary refuses to start, naming the culprit.
//!
//! These drive raw TCP sockets, because the point is what happens below a well-behaved client.

use std::sync::Arc;
use std::time::Duration;

use reward_actors::store::StoreBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{AppOptions, TestApp, spawn_app_with};

/// A generous bound for anything these tests wait for: the tiny configured timeouts below
/// are well under a second, so only a missing bound (a hang) takes this long.
const WAIT_MAX: Duration = Duration::from_secs(20);

/// How long a client queued behind the connection cap is watched for an answer it must not
/// get. Not a latency assertion: with the cap working it never answers, however long we wait.
const NO_ANSWER_WINDOW: Duration = Duration::from_millis(700);

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

async fn app_with_bounds(connections_max: usize, header_read_timeout_ms: u64, idle_timeout_ms: u64, crowded_idle_timeout_ms: u64) -> TestApp {
    spawn_app_with(AppOptions {
        backend: StoreBackend::Redb,
        tweak: Some(Arc::new(move |config| {
            config.server.connections_max = connections_max;
            config.server.header_read_timeout_ms = header_read_timeout_ms;
            config.server.idle_timeout_ms = idle_timeout_ms;
            config.server.crowded_idle_timeout_ms = crowded_idle_timeout_ms;
        })),
        ..AppOptions::default()
    })
    .await
}

/// Reads one response (head and `Content-Length` body) and answers it as text.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase().strip_prefix("content-length:").map(|value| value.trim().parse::<usize>().expect("length"))
                })
                .unwrap_or(0);
            if received.len() >= head_end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut chunk).await.expect("reads");
        assert!(read > 0, "closed before a whole response: {text:?}");
        received.extend_from_slice(&chunk[..read]);
    }
}

/// Reads until the server closes the connection; answers what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let closing = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&chunk[..read]),
            }
        }
    };
    tokio::time::timeout(WAIT_MAX, closing).await.expect("the server closes the connection");
    received
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dribbling_headers_is_cut_and_an_idle_one_is_closed() {
    // A minute of idle time: only the header timeout can cut the slow client.
    let app = app_with_bounds(8, 400, 60_000, 200).await;
    // Slowloris: a request line, then one header line every 100 ms, never the blank line.
    let mut slow = connect(&app).await;
    let (mut reader, mut writer) = slow.split();
    writer.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("writes");
    let mut chunk = [0u8; 64];
    let dribbling = async {
        let mut line = 0u32;
        loop {
            tokio::select! {
                read = reader.read(&mut chunk) => return read.unwrap_or(0),
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    line += 1;
                    if writer.write_all(format!("x-slow-{line}: 1\r\n").as_bytes()).await.is_err() {
                        return 0;
                    }
                }
            }
        }
    };
    let answered = tokio::time::timeout(WAIT_MAX, dribbling).await.expect("the server cuts a client that dribbles its headers");
    assert_eq!(answered, 0, "cut without an answer");
    // So is a connection that never sends a byte: its first head is timed from the accept.
    let mut silent = connect(&app).await;
    assert!(read_until_closed(&mut silent).await.is_empty());
    app.shutdown().await;

    // A minute for a head: only the idle timeout can close these.
    let app = app_with_bounds(8, 60_000, 500, 200).await;

    // Keep-alive: one request answered, then silence until the server closes.
    let mut idle = connect(&app).await;
    idle.write_all(HEALTHZ).await.expect("writes");
    let after = read_until_closed(&mut idle).await;
    assert!(after.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&after));

    // And the server still answers fresh clients.
    let mut fresh = connect(&app).await;
    fresh.write_all(HEALTHZ).await.expect("writes");
    assert!(read_response(&mut fresh).await.starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_and_a_freed_slot_serves_the_next_client() {
    // Long timeouts: only the cap decides here.
    let app = app_with_bounds(2, 60_000, 60_000, 60_000).await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = connect(&app).await;
        holder.write_all(HEALTHZ).await.expect("writes");
        assert!(read_response(&mut holder).await.starts_with("HTTP/1.1 200"), "served, and now holding a slot");
        holders.push(holder);
    }
    let mut queued = connect(&app).await;
    queued.write_all(HEALTHZ).await.expect("writes");
    let mut chunk = [0u8; 64];
    let early = tokio::time::timeout(NO_ANSWER_WINDOW, queued.read(&mut chunk)).await;
    assert!(early.is_err(), "a third connection was served past a cap of two: {early:?}");
    drop(holders.pop());
    let answer = tokio::time::timeout(WAIT_MAX, read_response(&mut queued)).await.expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_waiting_connections_make_room_for_a_fresh_client() {
    // Normal timeouts are a minute; only crowding (200 ms) can free a slot.
    let app = app_with_bounds(3, 60_000, 60_000, 200).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut holder = connect(&app).await;
        holder.write_all(HEALTHZ).await.expect("writes");
        assert!(read_response(&mut holder).await.starts_with("HTTP/1.1 200"));
        idle.push(holder);
    }
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("writes");
    let mut fresh = connect(&app).await;
    fresh.write_all(HEALTHZ).await.expect("writes");
    let answer = tokio::time::timeout(WAIT_MAX, read_response(&mut fresh)).await.expect("a fresh client is served at the cap");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The slow head and the idle keep-alives were closed by the server, not by a minute's timeout.
    assert!(read_until_closed(&mut slow).await.is_empty());
    for mut holder in idle {
        read_until_closed(&mut holder).await;
    }
    app.shutdown().await;
}

/// Sends a 3 MB body completely before reading anything (as urllib does), then reads the
/// whole answer until the server closes.
async fn write_all_then_read(app: &TestApp, head: &str, body: Vec<u8>) -> String {
    let mut stream = connect(app).await;
    let exchange = async {
        stream.write_all(head.as_bytes()).await.expect("the head is written");
        stream.write_all(&body).await.expect("the whole body is written: the server reads what it will refuse");
        read_until_closed(&mut stream).await
    };
    let answer = tokio::time::timeout(WAIT_MAX, exchange).await.expect("answered in time");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_readable_413(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("a head") + 4..];
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(json["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(json["details"]["limitBytes"], 64 * 1024);
}

const BODY_BYTES: usize = 3_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_a_whole_oversized_body_first_reads_the_413() {
    let app = app_with_bounds(64, 10_000, 60_000, 250).await;
    let declared =
        format!("POST /v1/partner/actions/submit HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {BODY_BYTES}\r\n\r\n");
    assert_readable_413(&write_all_then_read(&app, &declared, vec![b' '; BODY_BYTES]).await);

    let chunked = "POST /v1/partner/actions/submit HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let mut body = Vec::with_capacity(BODY_BYTES + 4096);
    for _ in 0..BODY_BYTES / 65_536 + 1 {
        body.extend_from_slice(format!("{:x}\r\n", 65_536).as_bytes());
        body.extend_from_slice(&[b' '; 65_536]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    assert_readable_413(&write_all_then_read(&app, chunked, body).await);

    // A client waiting for `100 Continue` is answered at once, before it sends anything.
    let mut waiting = connect(&app).await;
    let expect = format!("POST /v1/partner/actions/submit HTTP/1.1\r\nhost: test\r\nexpect: 100-continue\r\ncontent-length: {BODY_BYTES}\r\n\r\n");
    waiting.write_all(expect.as_bytes()).await.expect("writes");
    let answer = tokio::time::timeout(WAIT_MAX, read_response(&mut waiting)).await.expect("answered without the body");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    app.shutdown().await;
}

/// Runs `reward-engine serve` with `environment` (and nothing else from ours) and answers
/// its exit status and stderr; it must exit on its own.
async fn serve_refusing(environment: &[(&str, &str)]) -> (Option<i32>, String) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reward-engine"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env_clear()
        .envs(environment.iter().copied())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let output = tokio::time::timeout(WAIT_MAX, child.wait_with_output()).await.expect("it exits on its own").expect("its output");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_a_misplaced_variable_or_a_bad_log_filter_by_name() {
    let master_key = ("REWARD_MASTER_KEY", crate::support::MASTER_KEY);
    for (variable, value) in
        [("REWARD_LOG_FORMAT", "json"), ("REWARD_SERVER_LISTN", "127.0.0.1:1"), ("REWARD_LOG", "reward_engine=loud"), ("RUST_LOG", "[{")]
    {
        let (status, stderr) = serve_refusing(&[master_key, (variable, value)]).await;
        assert!(status.is_some_and(|code| code != 0), "{variable}: exited with {status:?}");
        assert!(stderr.contains(variable), "{variable} is not named in: {stderr}");
    }
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_reward-engine")).args(["serve", "--help"]).output().await.expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[possible values: redb, sled]"), "{help}");
    assert!(help.contains("[possible values: pretty, json]"), "{help}");
}
