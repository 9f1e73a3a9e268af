//! TLS for listeners: a given certificate and key (PEM), or a self-signed one made at start.
//! rustls with the ring provider. A missing or unreadable certificate is a config error: a TLS
//! port never silently becomes plain TCP.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{read_file_capped, resolve_path, Problems, TlsRaw, MAX_CONFIG_FILE};

pub fn validate(t: &TlsRaw, at: &str, base: &Path, p: &mut Problems<'_>) {
    let self_signed = t.self_signed.unwrap_or(false);
    match (&t.cert, &t.key, self_signed) {
        (Some(_), Some(_), true) => p.at(at, "give cert and key, or self_signed = true, not both"),
        (None, None, false) => p.at(at, "give cert and key, or self_signed = true"),
        (Some(_), None, _) => p.at(&format!("{at}.key"), "cert given without key"),
        (None, Some(_), _) => p.at(&format!("{at}.cert"), "key given without cert"),
        _ => {}
    }
    if let Some(c) = &t.cert {
        if let Err(e) = load_certs(&resolve_path(base, c)) {
            p.at(&format!("{at}.cert"), e);
        }
    }
    if let Some(k) = &t.key {
        if let Err(e) = load_key(&resolve_path(base, k)) {
            p.at(&format!("{at}.key"), e);
        }
    }
    if let (Some(c), Some(k)) = (&t.cert, &t.key) {
        if let (Ok(certs), Ok(key)) = (
            load_certs(&resolve_path(base, c)),
            load_key(&resolve_path(base, k)),
        ) {
            if let Err(e) = server_config(certs, key) {
                p.at(at, e);
            }
        }
    }
    if let Some(names) = &t.names {
        if names.is_empty() {
            p.at(&format!("{at}.names"), "names is empty");
        }
        if !self_signed {
            p.at(
                &format!("{at}.names"),
                "names is only used with self_signed = true",
            );
        }
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file_capped(path, MAX_CONFIG_FILE).map_err(|e| format!("certificate: {e}"))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file_capped(path, MAX_CONFIG_FILE).map_err(|e| format!("private key: {e}"))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("no usable private key in {}: {e}", path.display()))
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("certificate and key do not work together: {e}"))?;
    Ok(Arc::new(cfg))
}

/// Builds the rustls server config (generating a self-signed certificate if asked).
pub fn build(t: &TlsRaw, base: &Path) -> Result<Arc<ServerConfig>, String> {
    if t.self_signed.unwrap_or(false) {
        let names = t
            .names
            .clone()
            .unwrap_or_else(|| vec!["localhost".to_string()]);
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("self-signed certificate: {e}"))?;
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
            .map_err(|e| format!("self-signed key: {e}"))?;
        return server_config(vec![cert], key);
    }
    let (Some(c), Some(k)) = (&t.cert, &t.key) else {
        return Err("TLS needs cert and key or self_signed".into());
    };
    server_config(
        load_certs(&resolve_path(base, c))?,
        load_key(&resolve_path(base, k))?,
    )
}
