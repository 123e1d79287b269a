//! Microsoft Entra ID (Azure AD) bearer tokens for `type: AZURE` when no
//! account key is configured, chosen as Thanos' Azure provider chooses its
//! `azidentity` credential:
//!
//! 1. `az_tenant_id` + `client_id` + `client_secret`: OAuth2 client
//!    credentials at `<authority>/<tenant>/oauth2/v2.0/token`;
//! 2. `user_assigned_id`: managed identity from the instance metadata
//!    service (IMDS), for that client ID;
//! 3. else the SDK's default chain, as far as it applies to a daemon:
//!    `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`, then
//!    workload identity (`AZURE_FEDERATED_TOKEN_FILE` with
//!    `AZURE_CLIENT_ID`/`AZURE_TENANT_ID`; the file is re-read for each
//!    token, since Kubernetes rotates it), then managed identity
//!    (`AZURE_CLIENT_ID` selecting a user-assigned one, as the SDK does).
//!    The SDK's developer credentials (Azure CLI, azd) are not tried.
//!
//! `AZURE_AUTHORITY_HOST` overrides `https://login.microsoftonline.com/`,
//! as in the SDK. A token is reused until 5 minutes before it expires.
//! Secrets, assertions and tokens never appear in errors or logs: failures
//! name the endpoint's kind, the HTTP status and Entra's error code only.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AzureConfig, Error};

/// The scope (v2 endpoints) and resource (IMDS) of Azure Storage.
const SCOPE: &str = "https://storage.azure.com/.default";
const RESOURCE: &str = "https://storage.azure.com/";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
pub(crate) const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// A cached token is renewed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq)]
pub(crate) enum Source {
    ClientSecret {
        authority: String,
        tenant: String,
        client_id: String,
        secret: String,
    },
    Workload {
        authority: String,
        tenant: String,
        client_id: String,
        token_file: PathBuf,
    },
    Managed {
        endpoint: String,
        client_id: Option<String>,
    },
}

impl Source {
    /// Picks the credential from the config and the environment (`env`
    /// looks a variable up; empty counts as unset).
    pub(crate) fn choose(cfg: &AzureConfig, env: impl Fn(&str) -> Option<String>) -> Source {
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        let authority = env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.into());
        if !cfg.client_secret.is_empty() {
            return Source::ClientSecret {
                authority,
                tenant: cfg.az_tenant_id.clone(),
                client_id: cfg.client_id.clone(),
                secret: cfg.client_secret.clone(),
            };
        }
        if !cfg.user_assigned_id.is_empty() {
            return Source::Managed {
                endpoint: IMDS.into(),
                client_id: Some(cfg.user_assigned_id.clone()),
            };
        }
        let (tenant, client_id) = (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"));
        if let (Some(tenant), Some(client_id), Some(secret)) =
            (&tenant, &client_id, env("AZURE_CLIENT_SECRET"))
        {
            return Source::ClientSecret {
                authority,
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                secret,
            };
        }
        if let (Some(tenant), Some(client_id), Some(file)) =
            (&tenant, &client_id, env("AZURE_FEDERATED_TOKEN_FILE"))
        {
            return Source::Workload {
                authority,
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                token_file: file.into(),
            };
        }
        Source::Managed {
            endpoint: IMDS.into(),
            client_id,
        }
    }

    /// What the log may say about it.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Source::ClientSecret { .. } => "client secret",
            Source::Workload { .. } => "workload identity",
            Source::Managed { .. } => "managed identity",
        }
    }
}

pub(crate) struct TokenCredential {
    source: Source,
    agent: ureq::Agent,
    cached: Mutex<Option<(String, Instant)>>,
}

fn token_url(authority: &str, tenant: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/token",
        authority.trim_end_matches('/'),
        tenant
    )
}

/// `expires_in` is a number from Entra ID and a string from IMDS.
fn seconds(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

impl TokenCredential {
    pub(crate) fn new(source: Source, agent: ureq::Agent) -> TokenCredential {
        TokenCredential {
            source,
            agent,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token, fetched when the cached one is near its end.
    pub(crate) fn token(&self) -> Result<String, Error> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() + REFRESH_MARGIN < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch()?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    fn fetch(&self) -> Result<(String, Duration), Error> {
        let what = self.source.describe();
        let result = match &self.source {
            Source::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => self.agent.post(&token_url(authority, tenant)).send_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", SCOPE),
            ]),
            Source::Workload {
                authority,
                tenant,
                client_id,
                token_file,
            } => {
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    Error::other(format!(
                        "Azure {what}: reading AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                        token_file.display()
                    ))
                })?;
                self.agent.post(&token_url(authority, tenant)).send_form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                    ("scope", SCOPE),
                ])
            }
            Source::Managed {
                endpoint,
                client_id,
            } => {
                let mut req = self
                    .agent
                    .get(endpoint)
                    .set("Metadata", "true")
                    .query("api-version", "2018-02-01")
                    .query("resource", RESOURCE);
                if let Some(id) = client_id {
                    req = req.query("client_id", id);
                }
                req.call()
            }
        };
        let body = match result {
            Ok(resp) => resp
                .into_string()
                .map_err(|e| Error::other(format!("Azure {what} token: {e}")))?,
            Err(ureq::Error::Status(status, resp)) => {
                // Entra's `error` code (e.g. invalid_client) names the
                // cause without echoing anything secret.
                let code = resp
                    .into_string()
                    .ok()
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err(Error::other(format!(
                    "Azure {what} token: HTTP {status} {code}"
                )));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Error::other(format!("Azure {what} token: {}", t.kind())))
            }
        };
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| Error::other(format!("Azure {what} token: answer is not JSON")))?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::other(format!("Azure {what} token: no access_token")))?;
        // Without a lifetime, renew at the next request but one hour on.
        let lifetime = Duration::from_secs(seconds(&v["expires_in"]).unwrap_or(3600));
        log::debug!(credential = what, expires_in_seconds = lifetime.as_secs(); "Azure token acquired");
        Ok((token.to_string(), lifetime))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// The AZURE section of an objstore YAML (the Azure client's tests use it too).
    pub(crate) fn cfg(yaml: &str) -> AzureConfig {
        match crate::objstore::Config::parse(yaml)
            .unwrap()
            .unwrap()
            .backend
        {
            crate::objstore::Backend::Azure(az) => *az,
            _ => panic!("not AZURE"),
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn credentials_chosen_in_thanos_order() {
        let base = "type: AZURE\nconfig: {storage_account: a, container: c";
        let c = cfg(&format!(
            "{base}, az_tenant_id: t, client_id: i, client_secret: s}}\n"
        ));
        let all = env(&[
            ("AZURE_TENANT_ID", "et"),
            ("AZURE_CLIENT_ID", "ei"),
            ("AZURE_CLIENT_SECRET", "es"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ]);
        assert_eq!(
            Source::choose(&c, &all),
            Source::ClientSecret {
                authority: DEFAULT_AUTHORITY.into(),
                tenant: "t".into(),
                client_id: "i".into(),
                secret: "s".into()
            }
        );
        let c = cfg(&format!("{base}, user_assigned_id: u}}\n"));
        assert_eq!(
            Source::choose(&c, &all),
            Source::Managed {
                endpoint: IMDS.into(),
                client_id: Some("u".into())
            }
        );
        let c = cfg(&format!("{base}}}\n"));
        assert_eq!(Source::choose(&c, &all).describe(), "client secret");
        let wl = env(&[
            ("AZURE_TENANT_ID", "et"),
            ("AZURE_CLIENT_ID", "ei"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ("AZURE_AUTHORITY_HOST", "https://login.example/"),
        ]);
        assert_eq!(
            Source::choose(&c, &wl),
            Source::Workload {
                authority: "https://login.example/".into(),
                tenant: "et".into(),
                client_id: "ei".into(),
                token_file: "/f".into()
            }
        );
        assert_eq!(
            Source::choose(&c, env(&[("AZURE_CLIENT_ID", "ei")])),
            Source::Managed {
                endpoint: IMDS.into(),
                client_id: Some("ei".into())
            }
        );
        assert_eq!(
            Source::choose(&c, env(&[])),
            Source::Managed {
                endpoint: IMDS.into(),
                client_id: None
            }
        );
    }

    /// A one-route HTTP server answering `answer` and recording each request
    /// as `METHOD url` + body (+ the Metadata header).
    pub(crate) fn fake(answer: &'static str, status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let metadata = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Metadata"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                log.lock().unwrap().push(format!(
                    "{} {} {body} metadata={metadata}",
                    req.method(),
                    req.url()
                ));
                let _ =
                    req.respond(tiny_http::Response::from_string(answer).with_status_code(status));
            }
        });
        (format!("http://127.0.0.1:{port}"), seen)
    }

    #[test]
    fn client_secret_token_is_fetched_once_and_cached() {
        let (url, seen) = fake(
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok1"}"#,
            200,
        );
        let cred = TokenCredential::new(
            Source::ClientSecret {
                authority: format!("{url}/"),
                tenant: "ten".into(),
                client_id: "cid".into(),
                secret: "s3cr3t/+".into(),
            },
            ureq::Agent::new(),
        );
        assert_eq!(cred.token().unwrap(), "tok1");
        assert_eq!(cred.token().unwrap(), "tok1");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            ["POST /ten/oauth2/v2.0/token grant_type=client_credentials&client_id=cid&client_secret=s3cr3t%2F%2B&scope=https%3A%2F%2Fstorage.azure.com%2F.default metadata="]
        );
    }

    #[test]
    fn workload_identity_sends_the_file_as_assertion() {
        let (url, seen) = fake(r#"{"expires_in":"60","access_token":"tok2"}"#, 200);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "jwt-1\n").unwrap();
        let cred = TokenCredential::new(
            Source::Workload {
                authority: url,
                tenant: "ten".into(),
                client_id: "cid".into(),
                token_file: file.clone(),
            },
            ureq::Agent::new(),
        );
        assert_eq!(cred.token().unwrap(), "tok2");
        // 60 s is inside the refresh margin: the next call fetches anew,
        // with the rotated file.
        std::fs::write(&file, "jwt-2").unwrap();
        assert_eq!(cred.token().unwrap(), "tok2");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].contains("client_assertion=jwt-1&"), "{seen:?}");
        assert!(seen[1].contains("client_assertion=jwt-2&"), "{seen:?}");
        assert!(seen[0].contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"));
    }

    #[test]
    fn managed_identity_asks_imds_with_the_client_id() {
        let (url, seen) = fake(
            r#"{"access_token":"tok3","expires_in":"86399","resource":"https://storage.azure.com/"}"#,
            200,
        );
        let cred = TokenCredential::new(
            Source::Managed {
                endpoint: format!("{url}/metadata/identity/oauth2/token"),
                client_id: Some("uid".into()),
            },
            ureq::Agent::new(),
        );
        assert_eq!(cred.token().unwrap(), "tok3");
        assert_eq!(
            seen.lock().unwrap().clone(),
            ["GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F&client_id=uid  metadata=true"]
        );
    }

    #[test]
    fn errors_name_the_code_but_no_secret() {
        let (url, _) = fake(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided s3cr3t"}"#,
            401,
        );
        let cred = TokenCredential::new(
            Source::ClientSecret {
                authority: url,
                tenant: "ten".into(),
                client_id: "cid".into(),
                secret: "s3cr3t".into(),
            },
            ureq::Agent::new(),
        );
        let err = cred.token().unwrap_err().to_string();
        assert_eq!(err, "Azure client secret token: HTTP 401 invalid_client");
    }
}
