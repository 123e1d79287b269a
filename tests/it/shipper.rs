//! The shipper against real blocks (promtool's and a running Prometheus'),
//! a FILESYSTEM bucket and a real S3 server (moto, checking signatures):
//! layout, bytes, `meta.json`, the shipper file, the flags, and faults.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::thanos::bucket_verify;
use crate::support::{
    wait_for, FaultyProxy, GoSidecar, Moto, Prometheus, PrometheusOptions, Sidecar,
};

/// Everything one test needs on disk, on one filesystem (for renames and hard links).
pub(crate) struct Rig {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) prometheus: Prometheus,
}

impl Rig {
    pub(crate) fn new() -> Rig {
        let prometheus = Prometheus::start(PrometheusOptions {
            extra_args: vec!["--web.enable-admin-api".into()],
            ..Default::default()
        });
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("tsdb")).expect("tsdb dir");
        fs::create_dir_all(dir.path().join("scratch")).expect("scratch dir");
        Rig { dir, prometheus }
    }

    pub(crate) fn tsdb(&self) -> PathBuf {
        self.dir.path().join("tsdb")
    }

    pub(crate) fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join("bucket")
    }

    pub(crate) fn fs_config(&self) -> String {
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            self.bucket_dir().display()
        )
    }

    pub(crate) fn args(&self, objstore: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            format!("--prometheus.url={}", self.prometheus.url()),
            "--prometheus.get_config_interval=500ms".into(),
            format!("--tsdb.path={}", self.tsdb().display()),
            format!("--objstore.config={objstore}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// A block made by promtool from OpenMetrics text: `series` series with a
    /// sample every 15 s for an hour, in the 2 h window `windows_ago` windows back.
    pub(crate) fn promtool_block(&self, windows_ago: i64, series: usize) -> PathBuf {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let start = (now / 7200 - windows_ago) * 7200;
        let mut text = String::from("# HELP m test metric\n# TYPE m gauge\n");
        for s in 0..series {
            for i in 0..240i64 {
                text.push_str(&format!(
                    "m{{s=\"{s}\"}} {} {}\n",
                    i * (s as i64 + 1),
                    start + i * 15
                ));
            }
        }
        text.push_str("# EOF\n");
        let work = tempfile::tempdir_in(self.dir.path().join("scratch")).unwrap();
        let input = work.path().join("in.om");
        fs::write(&input, text).unwrap();
        let out = work.path().join("out");
        let status = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&out)
            .output()
            .expect("run promtool");
        assert!(status.status.success(), "{status:?}");
        let block = fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
        // Keep it beside the TSDB until placed (the temp dir goes away).
        let kept = self
            .dir
            .path()
            .join("scratch")
            .join(block.file_name().unwrap());
        fs::rename(&block, &kept).unwrap();
        kept
    }

    /// Moves a block into the TSDB in one rename, as Prometheus does.
    pub(crate) fn place(&self, block: &Path) -> String {
        let name = block.file_name().unwrap().to_str().unwrap().to_string();
        fs::rename(block, self.tsdb().join(&name)).unwrap();
        name
    }

    pub(crate) fn shipper_file(&self) -> Option<String> {
        fs::read_to_string(self.tsdb().join("thanos.shipper.json")).ok()
    }

    pub(crate) fn recorded(&self) -> Vec<String> {
        let Some(text) = self.shipper_file() else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        v["uploaded"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

fn shipper_json(ulids: &[&str]) -> String {
    if ulids.is_empty() {
        return "{\n\t\"version\": 1,\n\t\"uploaded\": null\n}\n".into();
    }
    let items: Vec<String> = ulids.iter().map(|u| format!("\t\t\"{u}\"")).collect();
    format!(
        "{{\n\t\"version\": 1,\n\t\"uploaded\": [\n{}\n\t]\n}}\n",
        items.join(",\n")
    )
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file of a block dir with its bytes, to prove the TSDB is untouched.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Checks an uploaded `meta.json` against the local one: top level equal,
/// `thanos` section exactly Thanos' (text and values), and returns it.
pub(crate) fn check_meta(uploaded: &[u8], local_dir: &Path, sha256: bool) -> Value {
    let text = String::from_utf8(uploaded.to_vec()).unwrap();
    let up: Value = serde_json::from_str(&text).unwrap();
    let local: Value =
        serde_json::from_slice(&fs::read(local_dir.join("meta.json")).unwrap()).unwrap();
    for key in [
        "ulid",
        "minTime",
        "maxTime",
        "stats",
        "compaction",
        "version",
    ] {
        assert_eq!(up[key], local[key], "{key} differs");
    }
    let file = |rel: &str| fs::read(local_dir.join(rel)).unwrap();
    let entry = |rel: &str| {
        let data = file(rel);
        let mut e = json!({"rel_path": rel, "size_bytes": data.len()});
        if sha256 {
            e["hash"] = json!({"hashFunc": "SHA256", "value": sha256_hex(&data)});
        }
        e
    };
    let upload_time = up["thanos"]["upload_time"].as_str().unwrap().to_string();
    assert!(
        upload_time.ends_with('Z') && upload_time.len() >= 20,
        "{upload_time}"
    );
    let expected = json!({
        "labels": {"cluster": "test", "replica": "0"},
        "downsample": {"resolution": 0},
        "source": "sidecar",
        "segment_files": ["000001"],
        "files": [entry("chunks/000001"), entry("index"), {"rel_path": "meta.json"}],
        "index_stats": {},
        "upload_time": upload_time,
    });
    assert_eq!(up["thanos"], expected);
    // Key order and Go's tab indentation, as Thanos writes them.
    let hash = |rel: &str| {
        if sha256 {
            format!(
                ",\n\t\t\t\t\"hash\": {{\n\t\t\t\t\t\"hashFunc\": \"SHA256\",\n\t\t\t\t\t\"value\": \"{}\"\n\t\t\t\t}}",
                sha256_hex(&file(rel))
            )
        } else {
            String::new()
        }
    };
    let section = format!(
        "\t\"thanos\": {{\n\t\t\"labels\": {{\n\t\t\t\"cluster\": \"test\",\n\t\t\t\"replica\": \"0\"\n\t\t}},\n\t\t\"downsample\": {{\n\t\t\t\"resolution\": 0\n\t\t}},\n\t\t\"source\": \"sidecar\",\n\t\t\"segment_files\": [\n\t\t\t\"000001\"\n\t\t],\n\t\t\"files\": [\n\t\t\t{{\n\t\t\t\t\"rel_path\": \"chunks/000001\",\n\t\t\t\t\"size_bytes\": {}{}\n\t\t\t}},\n\t\t\t{{\n\t\t\t\t\"rel_path\": \"index\",\n\t\t\t\t\"size_bytes\": {}{}\n\t\t\t}},\n\t\t\t{{\n\t\t\t\t\"rel_path\": \"meta.json\"\n\t\t\t}}\n\t\t],\n\t\t\"index_stats\": {{}},\n\t\t\"upload_time\": \"{upload_time}\"\n\t}}\n}}\n",
        file("chunks/000001").len(),
        hash("chunks/000001"),
        file("index").len(),
        hash("index"),
    );
    assert!(text.ends_with(&section), "thanos section differs:\n{text}");
    assert!(text.starts_with("{\n\t\"ulid\": "), "{text}");
    up
}

pub(crate) fn metric(sidecar: &Sidecar, name: &str) -> f64 {
    sidecar.metric(name).unwrap_or(-1.0)
}

#[test]
fn new_block_reaches_filesystem_bucket_as_thanos_lays_it_out() {
    let rig = Rig::new();
    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &["--hash-func=SHA256"]));
    // No blocks yet: the first sync writes an empty list.
    assert!(
        wait_for(Duration::from_secs(15), || rig.shipper_file().as_deref()
            == Some(&shipper_json(&[]))),
        "{:?}\n{}",
        rig.shipper_file(),
        sidecar.log()
    );

    let block = rig.promtool_block(3, 3);
    fs::write(block.join("tombstones.extra"), b"not uploaded").unwrap();
    let before = snapshot(&block);
    let id = rig.place(&block);
    let local = rig.tsdb().join(&id);
    // Far sooner than Thanos' 30 s poll: the directory watch triggers a sync.
    assert!(
        wait_for(Duration::from_secs(10), || rig.recorded()
            == vec![id.clone()]),
        "not uploaded within 10 s; log:\n{}",
        sidecar.log()
    );
    assert_eq!(rig.shipper_file().unwrap(), shipper_json(&[&id]));

    let b = rig.bucket_dir().join(&id);
    let mut keys: Vec<String> = snapshot(&rig.bucket_dir())
        .into_iter()
        .map(|(p, _)| {
            p.strip_prefix(rig.bucket_dir())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("{id}/chunks/000001"),
            format!("{id}/index"),
            format!("{id}/meta.json")
        ]
    );
    for rel in ["chunks/000001", "index"] {
        assert_eq!(
            fs::read(b.join(rel)).unwrap(),
            fs::read(local.join(rel)).unwrap()
        );
    }
    check_meta(&fs::read(b.join("meta.json")).unwrap(), &local, true);

    // The TSDB is untouched; the staging dir is gone.
    let after: Vec<_> = snapshot(&local)
        .into_iter()
        .map(|(p, d)| (block.join(p.strip_prefix(&local).unwrap()), d))
        .collect();
    assert_eq!(before, after);
    assert!(!rig.tsdb().join("thanos/upload").join(&id).exists());
    assert_eq!(metric(&sidecar, "thanos_shipper_uploads_total"), 1.0);
    assert_eq!(
        metric(&sidecar, "thanos_shipper_upload_compacted_done"),
        0.0
    );
    // The counter moves just after the shipper file is written.
    assert!(wait_for(Duration::from_secs(5), || metric(
        &sidecar,
        "thanos_shipper_dir_syncs_total"
    ) >= 2.0));
    let bucket_label = format!("fs: {}", rig.bucket_dir().display());
    assert_eq!(
        metric(
            &sidecar,
            &format!("thanos_objstore_bucket_operations_total{{bucket=\"{bucket_label}\",operation=\"upload\"}}")
        ),
        3.0
    );
    bucket_verify(&rig.fs_config(), &[], &[&id]);
}

#[test]
fn s3_upload_with_prefix_multipart_concurrency_and_put_order() {
    let rig = Rig::new();
    let moto = Moto::start();
    // A second segment file of 11 MiB makes a 3-part multipart upload at
    // the 5 MiB minimum part size, next to single-PUT objects.
    let block = rig.promtool_block(3, 2);
    let big: Vec<u8> = (0..11 * 1024 * 1024 + 17)
        .map(|i: u64| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(block.join("chunks/000002"), &big).unwrap();
    let id = rig.place(&block);
    let config = moto.config(
        &format!("127.0.0.1:{}", moto.port),
        "  part_size: 5242880\n",
        "foo/bar",
    );
    let sidecar = Sidecar::start(&rig.args(
        &config,
        &["--shipper.upload-concurrency=3", "--hash-func=SHA256"],
    ));
    assert!(
        wait_for(Duration::from_secs(30), || rig.recorded()
            == vec![id.clone()]),
        "not uploaded; log:\n{}\nmoto:\n{}",
        sidecar.log(),
        moto.log()
    );
    let mut keys = moto.keys();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("foo/bar/{id}/chunks/000001"),
            format!("foo/bar/{id}/chunks/000002"),
            format!("foo/bar/{id}/index"),
            format!("foo/bar/{id}/meta.json"),
        ]
    );
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "chunks/000002", "index"] {
        let remote = moto.get(&format!("foo/bar/{id}/{rel}")).unwrap();
        assert!(
            remote == fs::read(local.join(rel)).unwrap(),
            "{rel} differs"
        );
    }
    // segment_files and files list both segments.
    let meta = moto.get(&format!("foo/bar/{id}/meta.json")).unwrap();
    let meta: Value = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta["thanos"]["segment_files"], json!(["000001", "000002"]));
    assert_eq!(
        meta["thanos"]["files"][1],
        json!({"rel_path": "chunks/000002", "size_bytes": big.len(),
               "hash": {"hashFunc": "SHA256", "value": sha256_hex(&big)}})
    );

    // Server-side order: every chunk request, then index, then meta.json last.
    let writes: Vec<String> = moto
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT /thanos/foo") || r.starts_with("POST /thanos/foo"))
        .collect();
    let pos = |needle: &str| writes.iter().rposition(|r| r.contains(needle));
    let first = |needle: &str| writes.iter().position(|r| r.contains(needle));
    let last_chunk = pos("/chunks/").unwrap();
    let index = first(&format!("{id}/index")).unwrap();
    let meta_put = first(&format!("{id}/meta.json")).unwrap();
    assert!(last_chunk < index && index < meta_put, "{writes:#?}");
    assert_eq!(meta_put, writes.len() - 1, "{writes:#?}");
    assert!(
        writes.iter().any(|r| r.contains("partNumber=3")),
        "no multipart upload: {writes:#?}"
    );
    assert!(moto
        .requests()
        .iter()
        .any(|r| r.starts_with(&format!("HEAD /thanos/foo/bar/{id}/meta.json"))));
    assert_eq!(metric(&sidecar, "thanos_shipper_uploads_total"), 1.0);
    assert!(!rig.tsdb().join("thanos/upload").join(&id).exists());
}

#[test]
fn compacted_and_empty_blocks_follow_the_flags() {
    let rig = Rig::new();
    let level1 = rig.promtool_block(8, 1);
    let level2 = rig.promtool_block(5, 1);
    let empty = rig.promtool_block(2, 1);
    let id1 = rig.place(&level1);
    let id2 = rig.place(&level2);
    let id0 = rig.place(&empty);
    let edit = |id: &str, f: &dyn Fn(&mut Value)| {
        let path = rig.tsdb().join(id).join("meta.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    };
    edit(&id2, &|v| v["compaction"]["level"] = json!(2));
    edit(&id0, &|v| v["stats"]["numSamples"] = json!(0));

    let mut sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &[]));
    assert!(
        wait_for(Duration::from_secs(15), || rig.recorded()
            == vec![id1.clone()]),
        "{:?}\n{}",
        rig.shipper_file(),
        sidecar.log()
    );
    assert!(!rig.bucket_dir().join(&id2).exists());
    assert!(!rig.bucket_dir().join(&id0).exists());
    assert_eq!(
        metric(&sidecar, "thanos_shipper_upload_compacted_done"),
        0.0
    );
    sidecar.terminate();
    sidecar.wait_exit(Duration::from_secs(10)).unwrap();

    // With --shipper.upload-compacted the level-2 block goes up (no
    // overlapping block with the same labels in the bucket); the empty never.
    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &["--shipper.upload-compacted"]));
    assert!(
        wait_for(Duration::from_secs(15), || rig.recorded()
            == vec![id1.clone(), id2.clone()]),
        "{:?}\n{}",
        rig.shipper_file(),
        sidecar.log()
    );
    assert!(rig.bucket_dir().join(&id2).join("meta.json").is_file());
    assert!(!rig.bucket_dir().join(&id0).exists());
    assert!(wait_for(Duration::from_secs(5), || metric(
        &sidecar,
        "thanos_shipper_upload_compacted_done"
    ) == 1.0));
    assert!(
        sidecar
            .log()
            .contains("gathering all existing blocks from the remote bucket for check"),
        "{}",
        sidecar.log()
    );
}

#[test]
fn compacted_block_overlapping_the_bucket_is_held_back() {
    let rig = Rig::new();
    let old = rig.promtool_block(5, 1);
    let id_old = rig.place(&old);
    // The same time range, compacted, as another ULID: it overlaps.
    let copy = rig.dir.path().join("scratch/copy");
    Command::new("cp")
        .arg("-r")
        .arg(rig.tsdb().join(&id_old))
        .arg(&copy)
        .status()
        .unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let id_new = ulid::Ulid::from_parts(now_ms, 0x5EED).to_string();
    let mut v: Value = serde_json::from_slice(&fs::read(copy.join("meta.json")).unwrap()).unwrap();
    v["ulid"] = json!(id_new);
    v["compaction"]["level"] = json!(2);
    fs::write(copy.join("meta.json"), serde_json::to_vec(&v).unwrap()).unwrap();

    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &["--shipper.upload-compacted"]));
    assert!(wait_for(Duration::from_secs(15), || rig.recorded()
        == vec![id_old.clone()]));
    fs::rename(&copy, rig.tsdb().join(&id_new)).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || sidecar.log().contains(
            &format!("shipping compacted block {id_new} is blocked; overlap spotted")
        )),
        "{}",
        sidecar.log()
    );
    assert!(!rig.bucket_dir().join(&id_new).exists());
    assert_eq!(rig.recorded(), vec![id_old.clone()]);
    assert!(metric(&sidecar, "thanos_shipper_dir_sync_failures_total") >= 1.0);
}

#[test]
fn block_already_in_bucket_is_recorded_without_upload() {
    let rig = Rig::new();
    let block = rig.promtool_block(3, 1);
    let id = rig.place(&block);
    fs::create_dir_all(rig.bucket_dir().join(&id)).unwrap();
    fs::write(rig.bucket_dir().join(&id).join("meta.json"), b"{}").unwrap();
    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &[]));
    assert!(wait_for(Duration::from_secs(15), || rig.recorded()
        == vec![id.clone()]));
    assert!(!rig.bucket_dir().join(&id).join("index").exists());
    assert_eq!(
        fs::read(rig.bucket_dir().join(&id).join("meta.json")).unwrap(),
        b"{}"
    );
    assert_eq!(metric(&sidecar, "thanos_shipper_uploads_total"), 0.0);
}

#[test]
fn corrupted_block_stops_syncs_unless_skipped() {
    let rig = Rig::new();
    let good1 = rig.place(&rig.promtool_block(8, 1));
    let bad = rig.place(&rig.promtool_block(6, 1));
    let good2 = rig.place(&rig.promtool_block(4, 1));
    fs::write(rig.tsdb().join(&bad).join("meta.json"), b"{\"ulid\": trunc").unwrap();

    let mut sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &[]));
    assert!(
        wait_for(Duration::from_secs(15), || metric(
            &sidecar,
            "thanos_shipper_dir_sync_failures_total"
        ) >= 1.0),
        "{}",
        sidecar.log()
    );
    let log = sidecar.log();
    assert!(
        log.contains(&format!(
            "read metadata for block {}",
            rig.tsdb().join(&bad).display()
        )),
        "{log}"
    );
    assert!(log.contains("invalid JSON"), "{log}");
    assert!(!rig.bucket_dir().exists() || fs::read_dir(rig.bucket_dir()).unwrap().count() == 0);
    assert!(rig.shipper_file().is_none());
    sidecar.terminate();
    sidecar.wait_exit(Duration::from_secs(10)).unwrap();

    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &["--shipper.skip-corrupted-blocks"]));
    assert!(
        wait_for(Duration::from_secs(15), || rig.recorded()
            == vec![good1.clone(), good2.clone()]),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(Duration::from_secs(5), || metric(
        &sidecar,
        "thanos_shipper_corrupted_blocks_total"
    ) >= 1.0));
    assert!(
        sidecar.log().contains("failed to sync 0/1 blocks"),
        "{}",
        sidecar.log()
    );
    assert!(!rig.bucket_dir().join(&bad).exists());
}

#[test]
fn half_written_block_fails_alone_with_out_of_order_uploads() {
    let rig = Rig::new();
    let good1 = rig.place(&rig.promtool_block(8, 1));
    let half = rig.place(&rig.promtool_block(6, 1));
    let good2 = rig.place(&rig.promtool_block(4, 1));
    fs::remove_file(rig.tsdb().join(&half).join("index")).unwrap();

    // In order (the default), the half-written block holds back the next one.
    let mut sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &[]));
    assert!(
        wait_for(Duration::from_secs(15), || sidecar.log().contains(
            &format!("upload {half}: hard link block: hard link file index")
        )),
        "{}",
        sidecar.log()
    );
    assert!(rig.bucket_dir().join(&good1).join("meta.json").is_file());
    assert!(!rig.bucket_dir().join(&good2).exists());
    // Recorded as soon as it was uploaded, though the sync then stopped
    // (Thanos records nothing of a sync that stops).
    assert_eq!(rig.recorded(), vec![good1.clone()]);
    sidecar.terminate();
    sidecar.wait_exit(Duration::from_secs(10)).unwrap();

    let sidecar =
        Sidecar::start(&rig.args(&rig.fs_config(), &["--shipper.allow-out-of-order-uploads"]));
    assert!(
        wait_for(Duration::from_secs(15), || rig.recorded()
            == vec![good1.clone(), good2.clone()]),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(Duration::from_secs(5), || metric(
        &sidecar,
        "thanos_shipper_upload_failures_total"
    ) >= 1.0));
    assert!(
        sidecar.log().contains("shipping failed"),
        "{}",
        sidecar.log()
    );
    assert!(!rig.bucket_dir().join(&half).join("meta.json").exists());
}

#[test]
fn s3_outage_mid_upload_records_nothing_then_completes() {
    let rig = Rig::new();
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port);
    let block = rig.promtool_block(3, 2);
    let big = vec![7u8; 8 * 1024 * 1024];
    fs::write(block.join("chunks/000002"), &big).unwrap();
    let id = rig.place(&block);
    // Stall the upload a few MiB in, then cut the connection.
    proxy.pause_after(3 * 1024 * 1024);
    let config = moto.config(&proxy.endpoint(), "", "");
    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(20), || proxy.is_paused()),
        "upload did not start; {}",
        sidecar.log()
    );
    assert!(sidecar.ready());
    proxy.down();
    assert!(
        wait_for(Duration::from_secs(20), || sidecar
            .log()
            .contains("shipper sync failed")),
        "{}",
        sidecar.log()
    );
    // Nothing recorded, no meta.json in the bucket; the sidecar serves on.
    assert!(!rig.recorded().contains(&id));
    assert!(moto.get(&format!("{id}/meta.json")).is_none());
    assert!(sidecar.ready());
    assert_eq!(sidecar.get("/-/healthy").0, 200);
    // The StoreAPI is unaffected by the failing uploads. On a loaded machine
    // Prometheus may not have scraped itself yet: wait until it has `up`.
    assert!(wait_for(Duration::from_secs(20), || !rig
        .prometheus
        .api("/api/v1/series?match[]=up")
        .as_array()
        .is_none_or(|a| a.is_empty())));
    let series = crate::support::sidecar::command()
        .args(["store", "series", "--match=up"])
        .arg(format!("--store=127.0.0.1:{}", sidecar.grpc_port))
        .output()
        .expect("run store series");
    let out = String::from_utf8_lossy(&series.stdout);
    assert!(
        series.status.success() && out.contains(r#"__name__="up""#),
        "{out}{}",
        String::from_utf8_lossy(&series.stderr)
    );
    assert!(metric(&sidecar, "thanos_shipper_dir_sync_failures_total") >= 1.0);

    // Back up: a retry (backing off up to the 30 s period) ships it whole.
    proxy.up();
    assert!(
        wait_for(Duration::from_secs(45), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "chunks/000002", "index"] {
        assert!(moto.get(&format!("{id}/{rel}")).unwrap() == fs::read(local.join(rel)).unwrap());
    }
    check_meta_json_present(&moto, &id);
}

/// A bucket that was down when a block appeared gets it within seconds of
/// coming back: failed syncs are retried after 1 s, 2 s, ... (not only at
/// Thanos' 30 s tick).
#[test]
fn a_bucket_back_from_an_outage_gets_the_pending_block_within_seconds() {
    let rig = Rig::new();
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port);
    let id = rig.place(&rig.promtool_block(3, 1));
    proxy.down();
    let config = moto.config(&proxy.endpoint(), "", "");
    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(20), || sidecar
            .log()
            .contains("shipper sync failed")),
        "{}",
        sidecar.log()
    );
    proxy.up();
    let t = std::time::Instant::now();
    assert!(
        wait_for(Duration::from_secs(40), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    let took = t.elapsed();
    eprintln!("recovery: block recorded {took:?} after the bucket came back");
    // 1 s to the first retry, 2 s to the second should the first have
    // raced the proxy coming up, and the upload itself.
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: {}",
        sidecar.log()
    );
    check_meta_json_present(&moto, &id);
}

fn check_meta_json_present(moto: &Moto, id: &str) {
    let meta: Value =
        serde_json::from_slice(&moto.get(&format!("{id}/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["ulid"], json!(id));
    assert_eq!(meta["thanos"]["source"], json!("sidecar"));
}

#[test]
fn sigkill_mid_upload_then_restart_ships_the_block_once() {
    let rig = Rig::new();
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port);
    let block = rig.promtool_block(3, 2);
    fs::write(block.join("chunks/000002"), vec![3u8; 6 * 1024 * 1024]).unwrap();
    let id = rig.place(&block);
    proxy.pause_after(2 * 1024 * 1024);
    let config = moto.config(&proxy.endpoint(), "", "");
    let mut sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(20), || proxy.is_paused()),
        "{}",
        sidecar.log()
    );
    assert!(rig.tsdb().join("thanos/upload").join(&id).exists());
    sidecar.kill();
    proxy.up();
    assert!(!rig.recorded().contains(&id));
    assert!(moto.get(&format!("{id}/meta.json")).is_none());

    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(20), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    assert_eq!(rig.shipper_file().unwrap(), shipper_json(&[&id]));
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "chunks/000002", "index"] {
        assert!(moto.get(&format!("{id}/{rel}")).unwrap() == fs::read(local.join(rel)).unwrap());
    }
    check_meta_json_present(&moto, &id);
    assert!(!rig.tsdb().join("thanos/upload").join(&id).exists());
}

/// The shipper file is written after every block, not once per sync: a
/// kill -9 after the 2nd of 5 blocks finds those two recorded, and the
/// restart uploads only blocks 3 to 5.
#[test]
fn sigkill_after_two_of_five_blocks_then_restart_uploads_only_the_other_three() {
    let rig = Rig::new();
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port);
    let mut ids = Vec::new();
    for windows_ago in (3..8).rev() {
        let block = rig.promtool_block(windows_ago, 1);
        fs::write(block.join("chunks/000002"), vec![9u8; 1024 * 1024]).unwrap();
        ids.push(rig.place(&block));
    }
    ids.sort();
    // About two and a half blocks get through, then the upload stalls.
    proxy.pause_after(2 * 1024 * 1024 + 700 * 1024);
    let config = moto.config(&proxy.endpoint(), "", "");
    let mut sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(30), || proxy.is_paused()),
        "{}",
        sidecar.log()
    );
    assert!(
        wait_for(Duration::from_secs(10), || rig.recorded().len() == 2),
        "recorded {:?} with the 3rd upload stalled: {}",
        rig.recorded(),
        sidecar.log()
    );
    let first_two = rig.recorded();
    sidecar.kill();
    proxy.up();

    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(30), || rig.recorded() == ids),
        "{:?}: {}",
        rig.recorded(),
        sidecar.log()
    );
    assert_eq!(metric(&sidecar, "thanos_shipper_uploads_total"), 3.0);
    for id in &first_two {
        check_meta_json_present(&moto, id);
    }
}

#[test]
fn sigterm_mid_upload_exits_promptly_without_recording() {
    let rig = Rig::new();
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port);
    let block = rig.promtool_block(3, 2);
    fs::write(block.join("chunks/000002"), vec![5u8; 6 * 1024 * 1024]).unwrap();
    let id = rig.place(&block);
    proxy.pause_after(2 * 1024 * 1024);
    let config = moto.config(&proxy.endpoint(), "", "");
    let mut sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(wait_for(Duration::from_secs(20), || proxy.is_paused()));
    sidecar.terminate();
    // The upload is stuck on a stalled connection: the process does not
    // wait for the socket to time out (minutes), it abandons the upload.
    let status = sidecar.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        sidecar.log()
    );
    assert!(!rig.recorded().contains(&id));
    assert!(moto.get(&format!("{id}/meta.json")).is_none());
}

#[test]
fn block_cut_by_running_prometheus_is_shipped() {
    let rig = Rig::new();
    // Prometheus scrapes itself every second; once its head holds samples, a
    // TSDB snapshot writes the head as a block, which moves into the TSDB dir.
    let snapshot_block = || -> Option<PathBuf> {
        let resp = ureq::post(&format!(
            "{}/api/v1/admin/tsdb/snapshot",
            rig.prometheus.url()
        ))
        .call()
        .ok()?;
        let body: Value = serde_json::from_str(&resp.into_string().ok()?).ok()?;
        let name = body["data"]["name"].as_str()?.to_string();
        let snap = rig.prometheus.data_dir().join("snapshots").join(name);
        Some(fs::read_dir(&snap).ok()?.next()?.ok()?.path())
    };
    let mut block = None;
    assert!(
        wait_for(Duration::from_secs(30), || {
            block = snapshot_block();
            block.is_some()
        }),
        "Prometheus wrote no block; log:\n{}",
        rig.prometheus.log()
    );
    let block = block.unwrap();
    let staged = rig
        .dir
        .path()
        .join("scratch")
        .join(block.file_name().unwrap());
    Command::new("cp")
        .arg("-r")
        .arg(&block)
        .arg(&staged)
        .status()
        .unwrap();
    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &["--hash-func=SHA256"]));
    let id = rig.place(&staged);
    assert!(
        wait_for(Duration::from_secs(10), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    check_meta(
        &fs::read(rig.bucket_dir().join(&id).join("meta.json")).unwrap(),
        &rig.tsdb().join(&id),
        true,
    );
    bucket_verify(&rig.fs_config(), &[], &[&id]);
}

/// With THANOS_BIN set: Thanos' own sidecar uploads the same block, and both
/// `meta.json` files and shipper files are byte-identical but for the time.
#[test]
fn uploads_match_thanos_sidecar_byte_for_byte() {
    let Ok(bin) = std::env::var("THANOS_BIN") else {
        eprintln!("THANOS_BIN not set; skipping the comparison with Thanos");
        return;
    };
    let rig = Rig::new();
    let block = rig.promtool_block(3, 3);
    let go_tsdb = rig.dir.path().join("go-tsdb");
    fs::create_dir_all(&go_tsdb).unwrap();
    Command::new("cp")
        .arg("-r")
        .arg(&block)
        .arg(&go_tsdb)
        .status()
        .unwrap();
    let id = rig.place(&block);
    let sidecar = Sidecar::start(&rig.args(&rig.fs_config(), &["--hash-func=SHA256"]));
    assert!(wait_for(Duration::from_secs(15), || rig.recorded()
        == vec![id.clone()]));
    drop(sidecar);

    let go_bucket = rig.dir.path().join("go-bucket");
    let go = GoSidecar::start(
        &bin,
        &rig.prometheus.url(),
        &go_tsdb,
        &[
            "--hash-func=SHA256".into(),
            format!(
                "--objstore.config=type: FILESYSTEM\nconfig: {{directory: {}}}",
                go_bucket.display()
            ),
        ],
    );
    let shipped = wait_for(Duration::from_secs(30), || {
        go_bucket.join(&id).join("meta.json").is_file()
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(go);
    assert!(shipped);
    let strip = |p: PathBuf| {
        let t = fs::read_to_string(p).unwrap();
        let start = t.find("\"upload_time\"").unwrap();
        let end = start + t[start..].find('\n').unwrap();
        format!("{}{}", &t[..start], &t[end..])
    };
    assert_eq!(
        strip(rig.bucket_dir().join(&id).join("meta.json")),
        strip(go_bucket.join(&id).join("meta.json"))
    );
    assert_eq!(
        fs::read_to_string(rig.tsdb().join("thanos.shipper.json")).unwrap(),
        fs::read_to_string(go_tsdb.join("thanos.shipper.json")).unwrap()
    );
}

#[test]
fn s3_credentials_from_aws_environment_when_keys_are_empty() {
    let rig = Rig::new();
    let moto = Moto::start();
    let id = rig.place(&rig.promtool_block(3, 1));
    let config = format!(
        "type: S3\nconfig:\n  bucket: {}\n  endpoint: \"127.0.0.1:{}\"\n  insecure: true\n",
        moto.bucket, moto.port
    );
    let sidecar = Sidecar::start_with_env(
        &rig.args(&config, &[]),
        &[
            ("AWS_ACCESS_KEY_ID", moto.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", moto.secret_key.as_str()),
        ],
    );
    // moto checks the signature: a wrong or missing key would be refused.
    assert!(
        wait_for(Duration::from_secs(20), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    check_meta_json_present(&moto, &id);
}

#[test]
fn s3_overlap_check_lists_the_prefixed_bucket() {
    let rig = Rig::new();
    let moto = Moto::start_without_auth();
    let old = rig.place(&rig.promtool_block(6, 1));
    let config = moto.config(&format!("127.0.0.1:{}", moto.port), "", "team/a");
    let sidecar = Sidecar::start(&rig.args(&config, &["--shipper.upload-compacted"]));
    assert!(
        wait_for(Duration::from_secs(20), || rig.recorded()
            == vec![old.clone()]),
        "{}",
        sidecar.log()
    );
    // A compacted block over the same range as the uploaded one (other
    // ULID) is held back; one over a free range goes up.
    let make_compacted = |from: &Path, ulid_ms: u64| -> String {
        let dir = rig.dir.path().join(format!("scratch/c{ulid_ms}"));
        Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(&dir)
            .status()
            .unwrap();
        let id = ulid::Ulid::from_parts(ulid_ms, 0xC0FFEE).to_string();
        let mut v: Value =
            serde_json::from_slice(&fs::read(dir.join("meta.json")).unwrap()).unwrap();
        v["ulid"] = json!(id);
        v["compaction"]["level"] = json!(2);
        fs::write(dir.join("meta.json"), serde_json::to_vec(&v).unwrap()).unwrap();
        fs::rename(&dir, rig.tsdb().join(&id)).unwrap();
        id
    };
    let overlapping = make_compacted(&rig.tsdb().join(&old), 1_700_000_000_000);
    assert!(
        wait_for(Duration::from_secs(15), || sidecar.log().contains(
            &format!("shipping compacted block {overlapping} is blocked")
        )),
        "{}",
        sidecar.log()
    );
    // One LIST of the prefix's "directories", then a GET of each meta.json.
    let lists = moto
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /thanos") && r.contains("delimiter="))
        .collect::<Vec<_>>();
    assert!(
        lists
            .iter()
            .any(|r| r.contains("prefix=team%2Fa%2F") || r.contains("prefix=team/a/")),
        "{lists:?}"
    );
    assert!(moto
        .requests()
        .iter()
        .any(|r| r == &format!("GET /thanos/team/a/{old}/meta.json")));
    fs::remove_dir_all(rig.tsdb().join(&overlapping)).unwrap();
    let free = rig.promtool_block(2, 1);
    let free_id = make_compacted(&free, 1_700_000_000_001);
    assert!(
        wait_for(Duration::from_secs(40), || rig.recorded()
            == vec![old.clone(), free_id.clone()]),
        "{:?}\n{}",
        rig.recorded(),
        sidecar.log()
    );
    assert!(moto.get(&format!("team/a/{free_id}/meta.json")).is_some());
    // Thanos reads the prefixed S3 bucket as it reads its own.
    bucket_verify(&config, &[], &[&old, &free_id]);
}
