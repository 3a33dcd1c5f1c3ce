//! A throwaway cluster starts, answers, survives stops and crashes with its data, and leaves
//! nothing behind. One cluster for the whole sequence: each start costs about a second.

use cqrs_test_cluster::{Mode, Options, TempCluster};

#[test]
fn a_cluster_starts_restarts_and_is_removed_on_drop() {
    let mut cluster = TempCluster::start(
        Options::new()
            .conf("max_connections = 17")
            .hba("host all all 127.0.0.1/32 trust")
            .file("extra.txt", "hello")
            .database("test db"),
    )
    .expect("start a cluster");
    assert!(cluster.is_running());
    assert!(
        cluster
            .url()
            .ends_with(&format!(":{}/test db", cluster.port()))
    );
    assert_eq!(cluster.psql("SHOW max_connections").unwrap(), "17");
    assert_eq!(
        cluster.psql("SELECT current_database()").unwrap(),
        "test db"
    );
    assert_eq!(
        std::fs::read_to_string(cluster.data_dir().join("extra.txt")).unwrap(),
        "hello"
    );
    let pid = cluster.pid().expect("a running postmaster has a pid");

    cluster
        .psql("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
        .unwrap();
    cluster.restart(Mode::Immediate).expect("crash and recover");
    assert_ne!(cluster.pid(), Some(pid));
    assert_eq!(cluster.psql("SELECT n FROM t").unwrap(), "1");

    cluster.stop(Mode::Fast).unwrap();
    assert!(!cluster.is_running());
    let refused = cluster.psql("SELECT 1").unwrap_err().to_string();
    assert!(refused.contains("psql"), "{refused}");
    cluster.start_again().unwrap();
    assert_eq!(cluster.psql("SELECT count(*) FROM t").unwrap(), "1");

    let failed = cluster
        .psql("SELECT * FROM missing")
        .unwrap_err()
        .to_string();
    assert!(failed.contains("missing"), "{failed}");
    assert!(cluster.log().contains("database system is ready"));

    let dir = cluster.data_dir().to_owned();
    drop(cluster);
    assert!(!dir.exists(), "{} was left behind", dir.display());
}
