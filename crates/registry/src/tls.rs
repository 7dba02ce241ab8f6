//! The TLS setup shared by every HTTPS connection this crate makes: rustls with the platform
//! certificate verifier, which is made only when the first HTTPS connection needs it.

use std::sync::Arc;

use crate::error::Error;

/// The TLS setup for every HTTPS connection: rustls with the platform verifier, made on first
/// use ([`LazyVerifier`]).
pub(crate) fn tls_config() -> Result<(rustls::ClientConfig, Arc<LazyVerifier>), Error> {
    // The ring provider is passed explicitly rather than installed process-wide, so this can
    // neither fail nor conflict with another crate's choice of default provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(LazyVerifier {
        provider: provider.clone(),
        verifier: std::sync::OnceLock::new(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::ClientSetup { source: Box::new(e) })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    // reqwest does not set ALPN on a preconfigured config; without it HTTP/2 is never chosen.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, verifier))
}

/// The platform certificate verifier, made when the first HTTPS connection needs it: loading
/// the machine's trusted roots takes milliseconds that builds talking only to plain-HTTP
/// registries (a loopback registry, say) should not pay at every start.
#[derive(Debug)]
pub(crate) struct LazyVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl LazyVerifier {
    /// The verifier, or why there is none (no trusted roots could be loaded).
    pub(crate) fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(format!("no trusted root certificates: {e}")))
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        // Asked for every handshake's hello: answered from the provider, without the roots
        // (the platform verifier answers the same way).
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_roots_are_loaded_only_when_https_needs_them() {
        let (_, lazy) = tls_config().unwrap();
        assert!(
            lazy.verifier.get().is_none(),
            "building the client loads no roots"
        );
        let _ = lazy.verifier();
        assert!(lazy.verifier.get().is_some(), "the first HTTPS use does");
    }
}
