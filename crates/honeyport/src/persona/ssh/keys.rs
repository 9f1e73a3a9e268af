//! Host keys: generated on first start and kept in the data dir (`ssh/ssh_host_*_key`, OpenSSH
//! format, mode 0600, with `.pub` files), so a sensor's SSH identity stays the same across
//! restarts, as a real host's does. RSA is 3072 bits, as `ssh-keygen` makes it.

use std::path::Path;

use russh::keys::ssh_key::{HashAlg, LineEnding};
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

/// Loads the host keys from `dir`, generating any that are missing (RSA, ECDSA P-256,
/// Ed25519, the order OpenSSH lists them in).
pub fn load_or_create(dir: &Path, comment: &str) -> Result<Vec<PrivateKey>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let specs = [
        ("ssh_host_rsa_key", Algorithm::Rsa { hash: None }),
        (
            "ssh_host_ecdsa_key",
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
    ];
    let mut keys = Vec::new();
    for (name, alg) in specs {
        let path = dir.join(name);
        let key = if path.exists() {
            PrivateKey::read_openssh_file(&path).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            let mut rng = russh::keys::key::safe_rng();
            let made = match alg {
                Algorithm::Rsa { .. } => {
                    russh::keys::ssh_key::private::RsaKeypair::random(&mut rng, 3072)
                        .map(PrivateKey::from)
                }
                alg => PrivateKey::random(&mut rng, alg),
            };
            let mut k = made.map_err(|e| format!("generating {name}: {e}"))?;
            k.set_comment(comment);
            k.write_openssh_file(&path, LineEnding::LF)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let public = k
                .public_key()
                .to_openssh()
                .map_err(|e| format!("{name}: {e}"))?;
            std::fs::write(path.with_extension("pub"), public + "\n")
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(
                "generated SSH host key {} {}",
                path.display(),
                k.fingerprint(HashAlg::Sha256)
            );
            k
        };
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys found are loaded as they are; a missing one is made and then stays the same.
    #[test]
    fn missing_keys_are_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssh");
        for k in ["ssh_host_rsa_key", "ssh_host_ecdsa_key"] {
            std::fs::copy(fixtures.join(k), dir.path().join(k)).unwrap();
        }
        let fp = |keys: &[PrivateKey]| -> Vec<String> {
            keys.iter()
                .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
                .collect()
        };
        let first = load_or_create(dir.path(), "root@test").unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first[2].algorithm(), Algorithm::Ed25519);
        let made = std::fs::read_to_string(dir.path().join("ssh_host_ed25519_key.pub")).unwrap();
        assert!(made.starts_with("ssh-ed25519 ") && made.trim_end().ends_with("root@test"));
        let again = load_or_create(dir.path(), "root@test").unwrap();
        assert_eq!(fp(&first), fp(&again));
        let fixture_rsa = PrivateKey::read_openssh_file(fixtures.join("ssh_host_rsa_key")).unwrap();
        assert_eq!(
            fp(&again)[0],
            fixture_rsa.fingerprint(HashAlg::Sha256).to_string()
        );
    }
}
