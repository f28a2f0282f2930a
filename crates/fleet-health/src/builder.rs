//! How a [`Prober`] is made: how many redirects it follows and which certificate
//! authorities it trusts besides the system's.

use std::fmt;

use http::header::{ACCEPT, HeaderMap, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::{DEFAULT_REDIRECT_LIMIT, Error, Prober};

/// Makes a [`Prober`] with settings other than the defaults.
///
/// ```
/// use fleet_health::Prober;
///
/// # fn run(ca_pem: &[u8]) -> Result<(), fleet_health::Error> {
/// // Trust the private CA that signed the apps' certificates, and take a redirect as
/// // the final answer.
/// let prober = Prober::builder()
///     .root_certificates_pem(ca_pem)?
///     .redirect_limit(0)
///     .build()?;
/// # let _ = prober;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ProberBuilder {
    redirect_limit: usize,
    roots: Vec<reqwest::Certificate>,
}

impl Default for ProberBuilder {
    fn default() -> Self {
        Self {
            redirect_limit: DEFAULT_REDIRECT_LIMIT,
            roots: Vec::new(),
        }
    }
}

impl fmt::Debug for ProberBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // reqwest's certificates are not `Debug`; how many there are says enough.
        f.debug_struct("ProberBuilder")
            .field("redirect_limit", &self.redirect_limit)
            .field("extra_roots", &self.roots.len())
            .finish()
    }
}

impl ProberBuilder {
    /// Follows up to `limit` redirects ([`DEFAULT_REDIRECT_LIMIT`] unless changed; 0:
    /// none, a redirect is then the final answer, judged by its 3xx status). Going past
    /// the limit makes a probe unhealthy.
    pub fn redirect_limit(mut self, limit: usize) -> Self {
        self.redirect_limit = limit;
        self
    }

    /// Also trusts every certificate in `pem` (one or more `CERTIFICATE` blocks, as in a
    /// `ca.crt` or a bundle) as a root, in addition to the system's roots.
    ///
    /// This is how an HTTPS endpoint with a private or self-signed certificate is probed
    /// *with* verification: give the certificate of the CA that signed it, or the
    /// self-signed certificate itself. The certificate must still name the host the URL
    /// names; when it cannot (probing a container by its IP address), see
    /// [`HttpTarget::with_tls_verify`](crate::HttpTarget::with_tls_verify).
    ///
    /// Fails when `pem` holds no certificate or a block is not valid PEM; a certificate
    /// that is valid PEM but not a usable X.509 root makes [`build`](Self::build) fail.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let before = self.roots.len();
        for der in CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(|source| Error::InvalidRootCertificates {
                reason: "a certificate is not valid PEM",
                source: Some(source),
            })?;
            let cert = reqwest::Certificate::from_der(&der).map_err(Error::Client)?;
            self.roots.push(cert);
        }
        if self.roots.len() == before {
            return Err(Error::InvalidRootCertificates {
                reason: "no CERTIFICATE block found",
                source: None,
            });
        }
        Ok(self)
    }

    /// Makes the prober: one HTTP client that verifies certificates against the
    /// system's roots and the extra ones, and one that does not, for the targets that
    /// opt out of verification.
    pub fn build(self) -> Result<Prober, Error> {
        let verified = match client(self.redirect_limit)
            .tls_certs_merge(self.roots.clone())
            .build()
        {
            Ok(client) => client,
            // No roots on the system (a FROM-scratch image): Mozilla's, compiled in.
            Err(error) => client(self.redirect_limit)
                .tls_certs_merge(self.roots)
                .tls_certs_merge(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS
                        .iter()
                        .filter_map(|der| reqwest::Certificate::from_der(der).ok()),
                )
                .build()
                .map_err(|_| Error::Client(error))?,
        };
        let unverified = client(self.redirect_limit)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(Error::Client)?;
        Ok(Prober {
            verified,
            unverified,
        })
    }
}

/// The settings both of a prober's clients share.
fn client(redirect_limit: usize) -> reqwest::ClientBuilder {
    let redirect = if redirect_limit == 0 {
        reqwest::redirect::Policy::none()
    } else {
        reqwest::redirect::Policy::limited(redirect_limit)
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/health+json, application/json;q=0.9, */*;q=0.1"),
    );
    reqwest::Client::builder()
        .user_agent(concat!("fleet-health/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .redirect(redirect)
        .no_proxy()
        // No idle connection is kept, so every probe opens a new one.
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(error: &Error) -> String {
        let mut out = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            out.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        out
    }

    fn check(pem: &str) -> String {
        match Prober::builder().root_certificates_pem(pem.as_bytes()) {
            Ok(builder) => format!("{builder:?}"),
            Err(e) => chain(&e),
        }
    }

    #[test]
    fn reads_pem_root_certificates() {
        insta::assert_snapshot!(check("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n"), @"ProberBuilder { redirect_limit: 10, extra_roots: 1 }");
        insta::assert_snapshot!(check("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\nnoise\n-----BEGIN CERTIFICATE-----\nAwQ=\n-----END CERTIFICATE-----\n"), @"ProberBuilder { redirect_limit: 10, extra_roots: 2 }");
        insta::assert_snapshot!(check(""), @"invalid PEM root certificates: no CERTIFICATE block found");
        insta::assert_snapshot!(check("not a certificate"), @"invalid PEM root certificates: no CERTIFICATE block found");
        insta::assert_snapshot!(check("-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n"), @"invalid PEM root certificates: no CERTIFICATE block found");
        insta::assert_snapshot!(check("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"), @"invalid PEM root certificates: a certificate is not valid PEM: base64 decode error: InvalidCharacter(33)");
        insta::assert_snapshot!(check("-----BEGIN CERTIFICATE-----\nAAEC\n"), @"invalid PEM root certificates: a certificate is not valid PEM: missing section end marker: [67, 69, 82, 84, 73, 70, 73, 67, 65, 84, 69]");
    }

    /// Set in the child process of [`builds_and_probes_without_system_ca_certificates`].
    const CHILD: &str = "FLEET_HEALTH_TEST_NO_SYSTEM_CERTS";

    /// With `SSL_CERT_FILE` and `SSL_CERT_DIR` naming an empty file and an empty
    /// directory (which rustls-native-certs reads instead of the system's store), as in a
    /// `FROM scratch` image, the prober still builds (on Mozilla's compiled-in roots) and
    /// probes. Environment variables are process-wide, so the test runs itself again in a
    /// child process with them set, and checks there.
    #[tokio::test]
    async fn builds_and_probes_without_system_ca_certificates() {
        if std::env::var_os(CHILD).is_none() {
            let empty =
                std::env::temp_dir().join(format!("fleet-health-no-certs-{}", std::process::id()));
            let dir = empty.join("certs");
            std::fs::create_dir_all(&dir).unwrap();
            let file = empty.join("ca-certificates.crt");
            std::fs::write(&file, "").unwrap();
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "builder::tests::builds_and_probes_without_system_ca_certificates",
                ])
                .args(["--nocapture", "--test-threads", "1"])
                .env(CHILD, "1")
                .env("SSL_CERT_FILE", &file)
                .env("SSL_CERT_DIR", &dir)
                .output()
                .unwrap();
            let _ = std::fs::remove_dir_all(&empty);
            let out = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && out.contains("1 passed"),
                "{out}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        // The system's verifier alone cannot be set up here: the fallback is tested.
        assert!(reqwest::Client::builder().build().is_err());
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let prober = Prober::builder().build().unwrap();
        let target = crate::ProbeTarget::http(&format!("http://{addr}/health")).unwrap();
        let result = prober
            .probe(&target, std::time::Duration::from_secs(5))
            .await;
        assert_eq!(result.outcome, crate::Health::Healthy, "{result:?}");
    }

    #[test]
    fn a_root_that_is_not_x509_fails_the_build() {
        let builder = Prober::builder()
            .root_certificates_pem(
                b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n",
            )
            .unwrap();
        let error = builder.build().unwrap_err();
        insta::assert_snapshot!(chain(&error), @"cannot build the HTTP client for probes: builder error: invalid peer certificate: BadEncoding");
    }
}
