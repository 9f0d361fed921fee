//! Process hygiene: a test process killed with SIGKILL leaves no server or temporary directory behind.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::process::is_alive;
use sluice_e2e::{GitServer, TestEnv};

const PID_FILE_VAR: &str = "SLUICE_E2E_HYGIENE_PID_FILE";

#[test]
fn killed_test_process_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_starts_servers_then_hangs", "--nocapture"])
        .env(PID_FILE_VAR, &pid_file)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let report = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file)
            && text.ends_with("end\n")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "the child test did not start its servers in time");
        assert!(child.try_wait().unwrap().is_none(), "the child test exited early");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut pids = Vec::new();
    let mut dirs = Vec::new();
    for line in report.lines() {
        match line.split_once(' ') {
            Some(("pid", pid)) => pids.push(pid.parse::<u32>().unwrap()),
            Some(("dir", path)) => dirs.push(PathBuf::from(path)),
            _ => {}
        }
    }
    assert_eq!(pids.len(), 4, "etcd, apiserver, controller-manager, lighttpd: {report}");
    assert!(pids.iter().all(|pid| is_alive(*pid)), "{report}");
    assert_eq!(dirs.len(), 2, "the cluster's and the git server's directories: {report}");
    assert!(dirs.iter().all(|dir| dir.is_dir()), "{report}");

    child.kill().unwrap(); // SIGKILL: no destructor, no panic hook runs in the child
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids.iter().any(|pid| is_alive(*pid)) || dirs.iter().any(|dir| dir.exists()) {
        assert!(
            Instant::now() < deadline,
            "left behind after the test process died: {:?} {:?}",
            pids.iter().filter(|pid| is_alive(**pid)).collect::<Vec<_>>(),
            dirs.iter().filter(|dir| dir.exists()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
#[ignore = "started as a child process by killed_test_process_leaves_nothing_running"]
async fn child_starts_servers_then_hangs() {
    let Some(pid_file) = std::env::var_os(PID_FILE_VAR) else { return };
    let env = TestEnv::shared().await.unwrap();
    let git = GitServer::start().unwrap();
    let mut report = String::new();
    for (_, pid) in env.cluster().pids() {
        report.push_str(&format!("pid {pid}\n"));
    }
    report.push_str(&format!("pid {}\n", git.pid()));
    report.push_str(&format!("dir {}\n", env.cluster().dir().display()));
    report.push_str(&format!("dir {}\nend\n", git.repos().root().display()));
    std::fs::write(pid_file, report).unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[test]
fn a_server_failing_on_a_taken_port_reports_it_with_its_log() {
    // Hold a port, then start a server on it: the harness must say what happened.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("python3");
    command.args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()]);
    let mut server = sluice_e2e::process::ServerProcess::spawn(
        "python http.server",
        command,
        &dir.path().join("log"),
        sluice_e2e::process::Lifetime::Guarded,
    )
    .unwrap();
    // The port answers (we hold it), so wait for the process to give up instead.
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        if let Err(err) = server.ensure_running() {
            break err;
        }
        assert!(Instant::now() < deadline, "the server kept running on a taken port");
        std::thread::sleep(Duration::from_millis(50));
    };
    let message = format!("{err:#}");
    assert!(message.contains("python http.server exited early"), "{message}");
    assert!(message.contains("Address already in use"), "{message}");
    assert!(server.failed_on_port_in_use());
}
