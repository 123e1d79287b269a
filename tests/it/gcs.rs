//! The shipper against a GCS emulator (fake-gcs-server, found through
//! STORAGE_EMULATOR_HOST as Google's Go client finds it): Thanos' layout with
//! `meta.json` last, resumable uploads in several chunks arriving intact, and
//! an outage that records nothing until the bucket is back. With
//! THANOS_BIN, `thanos tools bucket verify` (Google's Go client, pointed at
//! the emulator) accepts what was uploaded.

use std::fs;
use std::time::Duration;

use crate::shipper::{check_meta, metric, Rig};
use crate::support::thanos::bucket_verify;
use crate::support::{wait_for, FakeGcs, Sidecar};

/// Upload requests for `id`'s objects, in arrival order, as `(object, request)`.
fn uploads(gcs: &FakeGcs, id: &str) -> Vec<String> {
    gcs.requests()
        .into_iter()
        .filter(|r| r.starts_with("POST /upload/") && r.contains(id))
        .collect()
}

#[test]
fn gcs_block_is_shipped_with_thanos_layout_and_meta_json_last() {
    let Some(gcs) = FakeGcs::start() else { return };
    let rig = Rig::new();
    let id = rig.place(&rig.promtool_block(3, 2));
    let (k, v) = gcs.env();
    let sidecar = Sidecar::start_with_env(&rig.args(&gcs.config(""), &[]), &[(k, &v)]);
    assert!(
        wait_for(Duration::from_secs(30), || rig.recorded()
            == vec![id.clone()]),
        "{}\n{}",
        sidecar.log(),
        gcs.log()
    );
    assert_eq!(
        gcs.keys(),
        vec![
            format!("{id}/chunks/000001"),
            format!("{id}/index"),
            format!("{id}/meta.json"),
        ]
    );
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "index"] {
        assert!(
            gcs.get(&format!("{id}/{rel}")).unwrap() == fs::read(local.join(rel)).unwrap(),
            "{rel} differs"
        );
    }
    check_meta(&gcs.get(&format!("{id}/meta.json")).unwrap(), &local, false);
    let ups = uploads(&gcs, &id);
    assert_eq!(ups.len(), 3, "{ups:?}");
    assert!(ups[2].contains("meta.json"), "meta.json not last: {ups:?}");
    // Small objects go up in one request each, as the Go client sends them.
    assert!(
        ups.iter().all(|r| r.contains("uploadType=media")),
        "{ups:?}"
    );
    assert_eq!(metric(&sidecar, "thanos_shipper_uploads_total"), 1.0);
    let (code, body) = sidecar.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains(
            r#"thanos_objstore_bucket_operations_total{bucket="thanos",operation="upload"}"#
        ),
        "{body}"
    );
    bucket_verify(&gcs.config(""), &gcs.thanos_env(), &[&id]);
}

#[test]
fn gcs_object_bigger_than_a_chunk_goes_up_in_resumable_chunks_intact() {
    let Some(gcs) = FakeGcs::start() else { return };
    let rig = Rig::new();
    let block = rig.promtool_block(3, 1);
    // 1.3 MiB of varied bytes, not a multiple of the 256 KiB chunk: five
    // full chunks and a short last one.
    let big: Vec<u8> = (0..(1300 * 1024u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(block.join("chunks/000002"), &big).unwrap();
    let id = rig.place(&block);
    let (k, v) = gcs.env();
    let config = gcs.config("  chunk_size_bytes: 262144\n");
    let sidecar = Sidecar::start_with_env(&rig.args(&config, &[]), &[(k, &v)]);
    assert!(
        wait_for(Duration::from_secs(30), || rig.recorded()
            == vec![id.clone()]),
        "{}\n{}",
        sidecar.log(),
        gcs.log()
    );
    assert!(gcs.get(&format!("{id}/chunks/000002")).unwrap() == big);
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "index"] {
        assert!(gcs.get(&format!("{id}/{rel}")).unwrap() == fs::read(local.join(rel)).unwrap());
    }
    let requests = gcs.requests();
    let sessions: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("POST /upload/") && r.contains("uploadType=resumable"))
        .collect();
    assert_eq!(sessions.len(), 1, "{requests:#?}");
    assert!(sessions[0].contains("000002"), "{sessions:?}");
    let chunk_puts = requests
        .iter()
        .filter(|r| r.starts_with("PUT /upload/") && r.contains("upload_id="))
        .count();
    assert_eq!(chunk_puts, 6, "{requests:#?}");
    bucket_verify(&config, &gcs.thanos_env(), &[&id]);
}

#[test]
fn gcs_outage_records_nothing_then_ships_when_back() {
    let Some(mut gcs) = FakeGcs::start() else {
        return;
    };
    let rig = Rig::new();
    let id = rig.place(&rig.promtool_block(3, 1));
    gcs.stop();
    let (k, v) = gcs.env();
    let config = gcs.config("  max_retries: 2\n");
    let sidecar = Sidecar::start_with_env(&rig.args(&config, &[]), &[(k, &v)]);
    assert!(
        wait_for(Duration::from_secs(30), || sidecar
            .log()
            .contains("shipper sync failed")),
        "{}",
        sidecar.log()
    );
    assert!(rig.recorded().is_empty());
    assert!(sidecar.ready());
    assert!(metric(&sidecar, "thanos_shipper_dir_sync_failures_total") >= 1.0);
    // Errors name the object and what failed, never a token.
    let log = sidecar.log();
    assert!(log.contains("GCS ") && log.contains(&id), "{log}");
    gcs.resume();
    assert!(
        wait_for(Duration::from_secs(45), || rig.recorded()
            == vec![id.clone()]),
        "{}\n{}",
        sidecar.log(),
        gcs.log()
    );
    check_meta(
        &gcs.get(&format!("{id}/meta.json")).unwrap(),
        &rig.tsdb().join(&id),
        false,
    );
    assert_eq!(gcs.keys().len(), 3);
}

#[test]
fn gcs_config_errors_stop_the_sidecar_naming_the_key() {
    for (config, needle) in [
        ("type: GCS\nconfig: {use_grpc: true, bucket: b}\n", "use_grpc"),
        ("type: GCS\nconfig: {service_account: x}\n", "config.bucket"),
        (
            "type: GCS\nconfig: {bucket: b, service_account: '{\"type\": \"service_account\", \"client_email\": \"a@b\", \"private_key\": \"SECRET\"}'}\n",
            "config.service_account",
        ),
    ] {
        let out = crate::support::sidecar::command()
            .args(["sidecar", "--prometheus.url=http://127.0.0.1:1"])
            .arg(format!("--objstore.config={config}"))
            .env_remove("STORAGE_EMULATOR_HOST")
            .output()
            .expect("run the sidecar");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(needle), "{config}: {err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}
