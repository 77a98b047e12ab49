//! TLS with rustls, as Kairos uses it: the client side of its PostgreSQL connections and the
//! server side of its HTTP listeners. One crypto provider (aws-lc-rs, rustls's default) for both.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The crypto provider of every TLS configuration Kairos builds.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of the PEM file `path`.
///
/// # Errors
/// A message naming the file: unreadable, or holding no certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| {
            format!(
                "{} cannot be read as PEM certificates: {error}",
                path.display()
            )
        })?;
    if certificates.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certificates)
}

/// A client that verifies the server's certificate against the authorities in `roots` (a PEM
/// file), or the system's when `None`, and its name against the host connected to.
///
/// # Errors
/// A message naming the file or the system store when no authority could be read.
pub fn verifying_client(roots: Option<&Path>) -> Result<ClientConfig, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Some(path) => {
            for certificate in read_certificates(path)? {
                store.add(certificate).map_err(|error| {
                    format!(
                        "{} holds a certificate rustls refuses: {error}",
                        path.display()
                    )
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(native.certs);
            if store.is_empty() {
                return Err("the system's certificate store holds no authority".into());
            }
        }
    }
    Ok(client_builder()?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// A client that encrypts but takes the server's certificate as it comes (libpq's `prefer`
/// and `require`): protection from listeners on the wire, not from an impostor.
///
/// # Errors
/// Only if the provider supports no protocol version.
pub fn encrypting_client() -> Result<ClientConfig, String> {
    let verifier = UnverifiedServer(provider().signature_verification_algorithms);
    Ok(client_builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn client_builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())
}

/// A server presenting the PEM certificate chain `cert` with the PEM private key `key`.
///
/// # Errors
/// A message naming the file that cannot be read, or saying the key does not fit.
pub fn server(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain = read_certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
        format!(
            "{} cannot be read as a PEM private key: {error}",
            key.display()
        )
    })?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key do not make a TLS server: {error}"))
}

/// Accepts any certificate, but still checks the handshake's signatures with it.
#[derive(Debug)]
struct UnverifiedServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
