//! What this binary is: `--version` text and `thanos_build_info`.

use prom::{IntGaugeVec, Opts, Registry};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const REVISION: &str = match option_env!("THANOS_SIDECAR_REVISION") {
    Some(r) => r,
    None => "unknown",
};
const BRANCH: &str = match option_env!("THANOS_SIDECAR_BRANCH") {
    Some(b) => b,
    None => "unknown",
};
const RUSTC: &str = env!("THANOS_SIDECAR_RUSTC_VERSION");

/// Build tags, as Prometheus' `version.Print` shows Go's: only a test build
/// has one, and the integration tests look for it before using the hooks.
const TAGS: &str = if crate::fault::ENABLED {
    "fault-injection"
} else {
    "unknown"
};

pub fn version_text() -> String {
    let mut text = format!(
        "thanos-sidecar, version {VERSION} (branch: {BRANCH}, revision: {REVISION})\n  \
         rust version:     {RUSTC}\n  platform:         {}/{}\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    if crate::fault::ENABLED {
        text.push_str(&format!("  tags:             {TAGS}\n"));
    }
    text
}

/// `thanos_build_info` with Thanos' label names, so dashboards keep working;
/// `goversion` carries the Rust compiler's version.
pub fn register(registry: &Registry) -> Result<(), prom::Error> {
    let info = IntGaugeVec::new(
        Opts::new(
            "thanos_build_info",
            "A metric with a constant '1' value labeled by version, revision, branch, goversion from which thanos was built, and the goos and goarch for the build.",
        ),
        &["version", "revision", "branch", "goversion", "goos", "goarch", "tags"],
    )?;
    info.with_label_values(&[
        VERSION,
        REVISION,
        BRANCH,
        RUSTC,
        std::env::consts::OS,
        std::env::consts::ARCH,
        TAGS,
    ])
    .set(1);
    registry.register(Box::new(info))?;
    crate::http::process::register(registry)
}
