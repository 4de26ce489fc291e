//! A throwaway certificate authority and a server certificate for 127.0.0.1 and localhost, as
//! PEM files, for testing TLS against real servers.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files: the CA's certificate (what a client trusts), the server's certificate and key,
/// and a client certificate and key (for servers that verify clients), both signed by the CA.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl TestCertificates {
    /// Generates a CA and a server certificate signed by it into `directory`.
    pub fn generate(directory: &Path) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "influx2td test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");

        let mut client_params =
            CertificateParams::new(Vec::<String>::new()).expect("client params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "influx2td test client");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("client certificate");

        let files = Self {
            ca_file: directory.join("ca.pem"),
            cert_file: directory.join("server.pem"),
            key_file: directory.join("server-key.pem"),
            client_cert_file: directory.join("client.pem"),
            client_key_file: directory.join("client-key.pem"),
        };
        std::fs::write(&files.client_cert_file, client_cert.pem()).expect("write certificate");
        std::fs::write(&files.client_key_file, client_key.serialize_pem()).expect("write key");
        std::fs::write(&files.ca_file, ca_cert.pem()).expect("write CA");
        std::fs::write(&files.cert_file, server_cert.pem()).expect("write certificate");
        std::fs::write(&files.key_file, server_key.serialize_pem()).expect("write key");
        files
    }
}
