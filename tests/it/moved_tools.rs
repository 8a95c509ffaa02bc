//! The benchmark tools moved from the `reward-engine` binary to `reward-bench` (issue 12):
//! their old subcommands are hidden, run nothing, and tell whoever types them where they went.

#[tokio::test]
async fn the_moved_subcommands_point_to_reward_bench() {
    for (subcommand, arguments) in [
        ("loadgen", &["--url", "http://127.0.0.1:9", "--partners", "3"][..]),
        ("webhook-sink", &["--listen", "127.0.0.1:9"][..]),
        ("crash-loop", &["--kills", "2", "--help"][..]),
        ("hello-server", &[][..]),
    ] {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_reward-engine")).arg(subcommand).args(arguments).output().await.expect("runs");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{subcommand}: {stderr}");
        assert!(stderr.contains(&format!("moved: run `cargo run --release -p reward-bench -- {subcommand} …`")), "{subcommand}: {stderr}");
        assert!(run.stdout.is_empty(), "{subcommand} printed {:?}", String::from_utf8_lossy(&run.stdout));
    }
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_reward-engine")).arg("--help").output().await.expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("serve") && help.contains("verify"), "{help}");
    for hidden in ["loadgen", "webhook-sink", "crash-loop", "hello-server"] {
        assert!(!help.contains(hidden), "reward-engine --help lists {hidden}:\n{help}");
    }
}
