//! HTTPS probes against a real TLS server on loopback, with certificates made by the
//! test: trusted through an extra root, refused without it, accepted when a target opts
//! out of verification.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use fleet_health::{FailureKind, Health, HealthSpec, ProbeTarget, Prober};

use crate::pki::{self, Ca};
use crate::support::{self, TlsServer, respond, summary};

const TIMEOUT: Duration = Duration::from_secs(5);
const JSON: &str = "application/json";

/// An app whose `/h` answers `body` as JSON with status 200.
fn app(body: &'static str) -> Router {
    Router::new().route("/h", get(move || async move { respond(200, JSON, body) }))
}

/// `https://{host}:{port}/h` on `server`, verifying its certificate or not.
fn https(server: &TlsServer, host: &str, verify: bool) -> ProbeTarget {
    let url = format!("https://{host}:{}/h", server.addr.port());
    let ProbeTarget::Http(target) = url.parse().unwrap() else {
        unreachable!()
    };
    ProbeTarget::Http(target.with_tls_verify(verify))
}

#[tokio::test]
async fn a_certificate_from_a_trusted_private_ca_is_healthy() {
    let ca = Ca::new("fleet-health test CA");
    let server = support::serve_tls(
        app(r#"{"status":"ok","version":"1.4.2"}"#),
        ca.issue(&["127.0.0.1", "localhost"]),
    )
    .await;
    let prober = Prober::builder()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let result = prober
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 200 v=1.4.2");
    let result = prober
        .probe(&https(&server, "localhost", true), TIMEOUT)
        .await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 200 v=1.4.2");
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let ca = Ca::new("fleet-health test CA");
    let server = support::serve_tls(app(r#"{"status":"ok"}"#), ca.issue(&["127.0.0.1"])).await;
    // The system's roots only.
    let result = Prober::new()
        .unwrap()
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    assert_eq!(result.failure, Some(FailureKind::Certificate), "{result:?}");
    insta::assert_snapshot!(summary(&result), @"unhealthy [Certificate]: certificate refused: invalid peer certificate: UnknownIssuer");
    // Another CA than the one that signed it.
    let other = Ca::new("another CA");
    let prober = Prober::builder()
        .root_certificates_pem(other.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let result = prober
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    insta::assert_snapshot!(summary(&result), @"unhealthy [Certificate]: certificate refused: invalid peer certificate: UnknownIssuer");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_even_from_a_trusted_ca() {
    // The app's certificate names its public host; the probe reaches it by IP address,
    // as a probe of a container's own HTTPS port does.
    let ca = Ca::new("fleet-health test CA");
    let server = support::serve_tls(app(r#"{"status":"ok"}"#), ca.issue(&["app.example"])).await;
    let prober = Prober::builder()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let result = prober
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    assert_eq!(result.failure, Some(FailureKind::Certificate), "{result:?}");
    insta::assert_snapshot!(summary(&result), @r#"unhealthy [Certificate]: certificate refused: invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is only valid for DnsName("app.example")"#);
    let result = prober
        .probe(&https(&server, "127.0.0.1", false), TIMEOUT)
        .await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 200");
}

#[tokio::test]
async fn without_verification_a_self_signed_certificate_is_accepted_for_that_target_only() {
    let (identity, _pem) = pki::self_signed(&["app.example"]);
    let server = support::serve_tls(app(r#"{"status":"ok","version":"7"}"#), identity).await;
    let prober = Prober::new().unwrap();
    let result = prober
        .probe(&https(&server, "127.0.0.1", false), TIMEOUT)
        .await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 200 v=7");
    // The same prober still verifies for every other target.
    let result = prober
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    assert_eq!(result.failure, Some(FailureKind::Certificate), "{result:?}");
}

#[tokio::test]
async fn a_self_signed_certificate_can_be_trusted_as_its_own_root() {
    let (identity, pem) = pki::self_signed(&["127.0.0.1"]);
    let server = support::serve_tls(app(r#"{"status":"ok"}"#), identity).await;
    let prober = Prober::builder()
        .root_certificates_pem(pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let result = prober
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    insta::assert_snapshot!(summary(&result), @"healthy HTTP 200");
}

#[tokio::test]
async fn a_json_fail_status_over_https_is_unhealthy() {
    let ca = Ca::new("fleet-health test CA");
    let server = support::serve_tls(
        app(r#"{"status":"fail","version":"2.0.0","checks":{"db":{"status":"fail"}}}"#),
        ca.issue(&["127.0.0.1"]),
    )
    .await;
    let prober = Prober::builder()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let result = prober
        .probe(&https(&server, "127.0.0.1", true), TIMEOUT)
        .await;
    assert_eq!(result.failure, Some(FailureKind::Reported), "{result:?}");
    insta::assert_snapshot!(summary(&result), @r#"unhealthy [Reported] HTTP 200 v=2.0.0: reported status "fail"; checks: db fail"#);
}

#[tokio::test]
async fn a_health_spec_with_tls_verify_off_probes_by_ip_address() {
    // How an instance's configuration reaches the opt-out: `tls_verify = false` in its
    // health table, then the target for the container's address.
    let (identity, _pem) = pki::self_signed(&["app.example"]);
    let server = support::serve_tls(app(r#"{"status":"warn"}"#), identity).await;
    let spec: HealthSpec = toml::from_str(
        r#"
        kind = "https"
        path = "/h"
        tls_verify = false
        "#,
    )
    .unwrap();
    let target = spec.target("127.0.0.1", server.addr.port()).unwrap();
    let result = Prober::new().unwrap().probe(&target, TIMEOUT).await;
    insta::assert_snapshot!(summary(&result), @r#"degraded HTTP 200: reported status "warn""#);
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_is_cut_at_the_timeout() {
    // Accepts TCP connections and never answers the client's hello.
    let addr = support::hang().await;
    let timeout = Duration::from_millis(300);
    let prober = Prober::new().unwrap();
    for verify in [true, false] {
        let ProbeTarget::Http(target) = format!("https://{addr}/h").parse().unwrap() else {
            unreachable!()
        };
        let target = ProbeTarget::Http(target.with_tls_verify(verify));
        let result = prober.probe(&target, timeout).await;
        assert_eq!(result.failure, Some(FailureKind::Timeout), "{result:?}");
        insta::allow_duplicates! {
            insta::assert_snapshot!(summary(&result), @"unhealthy [Timeout]: timed out after 300ms waiting for a response");
        }
        // A hang detector, not a timing assertion.
        assert!(result.latency < Duration::from_secs(10), "{result:?}");
        assert!(result.latency >= timeout, "{result:?}");
    }
}

#[tokio::test]
async fn every_https_probe_makes_a_new_handshake() {
    let ca = Ca::new("fleet-health test CA");
    let server = support::serve_tls(app(r#"{"status":"ok"}"#), ca.issue(&["127.0.0.1"])).await;
    let prober = Prober::builder()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    for verify in [true, true, false, false] {
        let result = prober
            .probe(&https(&server, "127.0.0.1", verify), TIMEOUT)
            .await;
        assert_eq!(result.outcome, Health::Healthy, "{result:?}");
    }
    assert_eq!(
        server.handshakes.load(Ordering::SeqCst),
        4,
        "four probes, four TLS handshakes"
    );
}
