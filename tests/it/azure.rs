//! The shipper against a real Azure Blob server (Azurite, checking Shared
//! Key signatures): Thanos' layout with `meta.json` last, blocks bigger than
//! one 3 MiB piece as several Put Blocks, and an outage mid-upload. Each
//! test prints one line and passes when Azurite is not installed. With
//! THANOS_BIN, `thanos tools bucket verify` (the Azure SDK for Go, through
//! the same connection string) accepts what was uploaded.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::shipper::{check_meta, metric, Rig};
use crate::support::azurite::KEY;
use crate::support::thanos::bucket_verify;
use crate::support::{wait_for, Azurite, FaultyProxy, Sidecar};

/// Bytes that differ from piece to piece, so a misordered block list shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i / 4096) * 7 + i) as u8).collect()
}

/// `PUT` requests Azurite logged for blobs of block `id`, in order.
fn puts(azurite: &Azurite, id: &str) -> Vec<String> {
    azurite
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains(&format!("/{id}/")))
        .collect()
}

#[test]
fn azure_block_is_shipped_with_thanos_layout_and_meta_json_last() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let rig = Rig::new();
    let id = rig.place(&rig.promtool_block(3, 2));
    let config = azurite.config(&format!("127.0.0.1:{}", azurite.port), "", "");
    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(30), || rig.recorded()
            == vec![id.clone()]),
        "not uploaded; log:\n{}\nAzurite:\n{}",
        sidecar.log(),
        azurite.log()
    );
    // The sidecar created the container (storage_create_container defaults to true).
    assert!(azurite
        .requests()
        .iter()
        .any(|r| r == "PUT /devstoreaccount1/thanos?restype=container"));
    let mut keys = azurite.keys();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{id}/chunks/000001"),
            format!("{id}/index"),
            format!("{id}/meta.json")
        ]
    );
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "index"] {
        assert!(azurite.get(&format!("{id}/{rel}")).unwrap() == fs::read(local.join(rel)).unwrap());
    }
    let meta = azurite.get(&format!("{id}/meta.json")).unwrap();
    check_meta(&meta, &local, false);
    let puts = puts(&azurite, &id);
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(
        puts[2].ends_with("/meta.json"),
        "meta.json not last: {puts:?}"
    );
    // Small objects are one Put Blob each.
    assert!(puts.iter().all(|p| !p.contains("comp=block")), "{puts:?}");
    // Thanos labels Azure buckets with the container's name; no secret leaks.
    assert!(
        metric(
            &sidecar,
            r#"thanos_objstore_bucket_operations_total{bucket="thanos",operation="upload"}"#
        ) >= 3.0
    );
    let metrics = sidecar.get("/metrics").1;
    assert!(!metrics.contains(KEY) && !sidecar.log().contains(KEY));
    bucket_verify(&config, &[], &[&id]);
}

#[test]
fn azure_object_bigger_than_a_piece_goes_up_in_blocks_byte_identical() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let rig = Rig::new();
    let block = rig.promtool_block(3, 1);
    // 3 MiB pieces: two whole ones and a 12345-byte tail.
    let big = patterned(6 * 1024 * 1024 + 12345);
    fs::write(block.join("chunks/000002"), &big).unwrap();
    let id = rig.place(&block);
    let config = azurite.config(&format!("127.0.0.1:{}", azurite.port), "", "team/a");
    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(60), || rig.recorded()
            == vec![id.clone()]),
        "not uploaded; log:\n{}\nAzurite:\n{}",
        sidecar.log(),
        azurite.log()
    );
    assert!(azurite.get(&format!("team/a/{id}/chunks/000002")).unwrap() == big);
    let puts = puts(&azurite, &id);
    let blocks: Vec<&String> = puts
        .iter()
        .filter(|p| p.contains("/chunks/000002?") && p.contains("comp=block&"))
        .collect();
    assert_eq!(blocks.len(), 3, "{puts:?}");
    assert!(
        puts.iter()
            .any(|p| p.ends_with("/chunks/000002?comp=blocklist")),
        "{puts:?}"
    );
    assert!(puts.last().unwrap().ends_with("/meta.json"), "{puts:?}");
    let meta: Value =
        serde_json::from_slice(&azurite.get(&format!("team/a/{id}/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["ulid"], Value::from(id.as_str()));
    // Thanos reads the prefixed container as it reads its own.
    bucket_verify(&config, &[], &[&id]);
}

#[test]
fn azure_outage_mid_upload_records_nothing_then_ships_once_back() {
    let Some(mut azurite) = Azurite::start() else {
        return;
    };
    let rig = Rig::new();
    let proxy = FaultyProxy::start(azurite.port);
    let block = rig.promtool_block(3, 2);
    let big = patterned(8 * 1024 * 1024);
    fs::write(block.join("chunks/000002"), &big).unwrap();
    let id = rig.place(&block);
    // Stall the upload a few MiB in; then Azurite goes away for good.
    proxy.pause_after(4 * 1024 * 1024);
    let config = azurite.config(&proxy.endpoint(), "", "");
    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    assert!(
        wait_for(Duration::from_secs(30), || proxy.is_paused()),
        "upload did not start; {}",
        sidecar.log()
    );
    azurite.stop();
    proxy.down();
    assert!(
        wait_for(Duration::from_secs(40), || sidecar
            .log()
            .contains("shipper sync failed")),
        "{}",
        sidecar.log()
    );
    assert!(!rig.recorded().contains(&id));
    assert!(sidecar.ready());

    // Back on the same port and data: nothing of the block counts yet...
    azurite.restart();
    assert!(azurite.get(&format!("{id}/meta.json")).is_none());
    // ...and the next sync ships it whole.
    proxy.up();
    assert!(
        wait_for(Duration::from_secs(60), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    let local = rig.tsdb().join(&id);
    for rel in ["chunks/000001", "chunks/000002", "index"] {
        assert!(azurite.get(&format!("{id}/{rel}")).unwrap() == fs::read(local.join(rel)).unwrap());
    }
    let meta: Value =
        serde_json::from_slice(&azurite.get(&format!("{id}/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["ulid"], Value::from(id.as_str()));
    assert!(metric(&sidecar, "thanos_shipper_dir_sync_failures_total") >= 1.0);
}

#[test]
fn azure_down_when_a_block_appears_then_back_ships_it() {
    let Some(mut azurite) = Azurite::start() else {
        return;
    };
    let rig = Rig::new();
    let config = azurite.config(&format!("127.0.0.1:{}", azurite.port), "", "");
    let sidecar = Sidecar::start(&rig.args(&config, &[]));
    // The first (empty) sync has run against the live bucket.
    assert!(
        wait_for(Duration::from_secs(20), || rig.shipper_file().is_some()),
        "{}",
        sidecar.log()
    );
    azurite.stop();
    let id = rig.place(&rig.promtool_block(3, 1));
    assert!(
        wait_for(Duration::from_secs(40), || sidecar
            .log()
            .contains("shipper sync failed")),
        "{}",
        sidecar.log()
    );
    assert!(rig.recorded().is_empty());
    azurite.restart();
    assert!(
        wait_for(Duration::from_secs(60), || rig.recorded()
            == vec![id.clone()]),
        "{}",
        sidecar.log()
    );
    let meta: Value =
        serde_json::from_slice(&azurite.get(&format!("{id}/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["ulid"], Value::from(id.as_str()));
}

/// A wrong account key is refused by Azurite's signature check: the
/// sidecar stops at start-up naming the container and the status, and
/// shows neither key.
#[test]
fn azure_wrong_key_stops_start_up_without_leaking_it() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let rig = Rig::new();
    // A valid base64 key of the right length, but not Azurite's.
    let wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc=";
    let config = azurite
        .config(&format!("127.0.0.1:{}", azurite.port), "", "")
        .replace(KEY, wrong);
    let mut sidecar = Sidecar::spawn(&rig.args(&config, &[]), &[]);
    let status = sidecar.wait_exit(Duration::from_secs(30));
    let log = sidecar.log();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(log.contains("container thanos: HTTP 403"), "{log}");
    assert!(!log.contains(wrong) && !log.contains(KEY), "{log}");
}

/// `--shipper.upload-compacted` lists the (prefixed) container and reads
/// each block's meta.json: a compacted block over an uploaded range is
/// held back, as Thanos does.
#[test]
fn azure_overlap_check_lists_the_prefixed_container() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let rig = Rig::new();
    let old = rig.place(&rig.promtool_block(6, 1));
    let config = azurite.config(&format!("127.0.0.1:{}", azurite.port), "", "team/a");
    let sidecar = Sidecar::start(&rig.args(&config, &["--shipper.upload-compacted"]));
    assert!(
        wait_for(Duration::from_secs(20), || rig.recorded()
            == vec![old.clone()]),
        "{}",
        sidecar.log()
    );
    let dir = rig.dir.path().join("scratch/compacted");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(rig.tsdb().join(&old))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let id = ulid::Ulid::from_parts(1_700_000_000_000, 0xC0FFEE).to_string();
    let mut v: Value = serde_json::from_slice(&fs::read(dir.join("meta.json")).unwrap()).unwrap();
    v["ulid"] = Value::from(id.as_str());
    v["compaction"]["level"] = Value::from(2);
    fs::write(dir.join("meta.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    fs::rename(&dir, rig.tsdb().join(&id)).unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || sidecar
            .log()
            .contains(&format!("shipping compacted block {id} is blocked"))),
        "{}",
        sidecar.log()
    );
    let lists: Vec<String> = azurite
        .requests()
        .into_iter()
        .filter(|r| r.contains("comp=list"))
        .collect();
    assert!(
        lists
            .iter()
            .any(|r| r.contains("prefix=team%2Fa%2F") && r.contains("delimiter=%2F")),
        "{lists:?}"
    );
    assert!(azurite.get(&format!("team/a/{id}/meta.json")).is_none());
}
