//! restic's documented repository strings and variables, mapped; the options
//! read back through OpenDAL's service configurations and rustic_backend.

use std::collections::BTreeMap;

use opendal::Configurator;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// Every secret value the tests use: none may show in a reason or a `Debug`.
const SECRETS: &[&str] = &[
    "AKIDSECRETKEYID",
    "wJalrXUtnFEMIsecret",
    "FwoGZXIvYXdzEsession",
    "c2VjcmV0YXp1cmVrZXk=",
    "sv=2022&sig=sassecret",
    "ya29.googletoken",
    "swifttoken123",
    "restpass",
    "rcloneconfpass",
    "b2secretkey",
    "ospassword",
];

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(repo: &str, pairs: &[(&str, &str)]) -> BackendSpec {
    let spec = map(repo, &vars(pairs)).unwrap_or_else(|e| panic!("{repo}: {e}"));
    let shown = format!("{spec:?}");
    for s in SECRETS {
        assert!(!shown.contains(s), "{repo}: Debug shows a secret: {shown}");
        assert!(!spec.shown().contains(s), "{repo}: shown() holds a secret");
    }
    spec
}

fn no(repo: &str, pairs: &[(&str, &str)]) -> String {
    let reason = map(repo, &vars(pairs))
        .map(|s| panic!("{repo} mapped to {s:?}"))
        .unwrap_err()
        .to_string();
    assert!(!reason.contains('\n'), "{reason}");
    for s in SECRETS {
        assert!(
            !reason.contains(s),
            "{repo}: the reason shows a secret: {reason}"
        );
    }
    reason
}

fn opt<'a>(spec: &'a BackendSpec, key: &str) -> Option<&'a str> {
    spec.options.get(key).map(String::as_str)
}

/// The options as OpenDAL's service configuration `C` reads them; every key
/// but rustic's own must be one of its fields (a misspelt key would be
/// ignored silently).
fn read_back<C: Configurator + Serialize + DeserializeOwned>(spec: &BackendSpec) -> C {
    let config = C::from_iter(spec.options.clone()).expect("OpenDAL reads the options");
    let fields = serde_json::to_value(&config).unwrap();
    let names: Vec<&String> = fields.as_object().unwrap().keys().collect();
    for key in spec.options.keys() {
        if !["retry", "connections", "throttle"].contains(&key.as_str()) {
            assert!(
                names.contains(&key),
                "{key} is none of the fields {names:?}"
            );
        }
    }
    config
}

/// rustic_backend builds the backend (nothing is contacted yet).
fn builds(spec: &BackendSpec) {
    rustic_backend::BackendOptions::default()
        .repository(spec.repository.clone())
        .options(spec.options.clone())
        .to_backends()
        .unwrap_or_else(|e| panic!("{}: {e}", spec.shown()));
}

const AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDSECRETKEYID"),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsecret"),
];

#[test]
fn local_paths_open_without_a_cache() {
    let cache = [("RESTIC_CACHE_DIR", "/cache")];
    for repo in ["/srv/restic-repo", "local:/srv/restic-repo"] {
        let spec = ok(repo, &cache);
        assert_eq!(spec.repository, "/srv/restic-repo");
        assert_eq!(spec.local_dir(), Some("/srv/restic-repo"));
        assert!(spec.options.is_empty());
        assert_eq!(spec.cache_dir, None);
    }
    assert!(no("local:backups", &[]).starts_with("local: with a relative path"));
    assert!(no("backups", &[]).contains("neither an absolute path"));
}

#[test]
fn remote_repositories_cache_under_restic_cache_dir() {
    let spec = ok("rest:http://host:8000/", &[("RESTIC_CACHE_DIR", "/cache")]);
    assert_eq!(spec.cache_dir, Some(PathBuf::from("/cache/rustic")));
    assert_eq!(spec.local_dir(), None);
    assert_eq!(ok("rest:http://host:8000/", &[]).cache_dir, None);
}

#[test]
fn rest_takes_the_url_and_restics_variables() {
    let spec = ok("rest:http://host:8000/", &[]);
    assert_eq!(spec.repository, "rest:http://host:8000/");
    assert_eq!(opt(&spec, "retry"), Some(RETRIES));
    assert_eq!(opt(&spec, "timeout"), Some(REST_TIMEOUT));
    builds(&spec);
    let spec = ok("rest:https://user:restpass@host:8000/my_backup_repo/", &[]);
    assert_eq!(
        spec.repository,
        "rest:https://user:restpass@host:8000/my_backup_repo/"
    );
    assert_eq!(
        spec.shown(),
        "rest:https://user:***@host:8000/my_backup_repo/"
    );
    builds(&spec);
    // The variables go into the URL, escaped.
    let env = [
        ("RESTIC_REST_USERNAME", "backup user"),
        ("RESTIC_REST_PASSWORD", "restpass@:/x"),
    ];
    let spec = ok("rest:https://host:8000/repo", &env);
    assert_eq!(
        spec.repository,
        "rest:https://backup%20user:restpass%40%3A%2Fx@host:8000/repo"
    );
    builds(&spec);
    // A URL that names a user keeps its own.
    let spec = ok("rest:https://me@host:8000/", &env);
    assert_eq!(spec.repository, "rest:https://me@host:8000/");
    // Certificates.
    let spec = ok(
        "rest:https://host/",
        &[
            ("RESTIC_CACERT", "/ca.pem"),
            ("RESTIC_TLS_CLIENT_CERT", "/client.pem"),
        ],
    );
    assert_eq!(opt(&spec, "cacert"), Some("/ca.pem"));
    assert_eq!(opt(&spec, "tls-client-cert"), Some("/client.pem"));
    assert!(no("rest:https://host/", &[("RESTIC_CACERT", "/a.pem,/b.pem")]).contains("one file"));
    assert!(no("rest:http+unix:///tmp/rest.socket:/my_backup_repo/", &[]).contains("unix socket"));
    assert!(no("rest:host:8000", &[]).starts_with("rest: needs an http"));
}

#[test]
fn s3_on_amazon_needs_a_region() {
    use opendal::services::S3Config;
    let reason = no("s3:s3.amazonaws.com/bucket_name", AWS);
    assert!(reason.contains("set AWS_DEFAULT_REGION"), "{reason}");
    let mut env = AWS.to_vec();
    env.push(("AWS_DEFAULT_REGION", "eu-central-1"));
    let spec = ok("s3:s3.amazonaws.com/bucket_name", &env);
    assert_eq!(spec.repository, "opendal:s3");
    let c: S3Config = read_back(&spec);
    assert_eq!(c.bucket, "bucket_name");
    assert_eq!(c.endpoint.as_deref(), Some("https://s3.amazonaws.com"));
    assert_eq!(c.region.as_deref(), Some("eu-central-1"));
    assert_eq!(c.access_key_id.as_deref(), Some("AKIDSECRETKEYID"));
    assert_eq!(c.secret_access_key.as_deref(), Some("wJalrXUtnFEMIsecret"));
    assert!(c.disable_config_load && c.disable_ec2_metadata && c.enable_virtual_host_style);
    assert_eq!(opt(&spec, "retry"), Some(RETRIES));
    assert_eq!(opt(&spec, "connections"), Some(CONNECTIONS));
    builds(&spec);
    // The regional host names its region; the old prefix `restic`.
    let spec = ok("s3:s3.us-east-1.amazonaws.com/bucket_name/restic", AWS);
    let c: S3Config = read_back(&spec);
    assert_eq!(c.region.as_deref(), Some("us-east-1"));
    assert_eq!(c.root.as_deref(), Some("/restic"));
    assert_eq!(c.session_token, None);
    builds(&spec);
    // A bucket with dots cannot be a host name under TLS: path style.
    let spec = ok("s3:s3.eu-west-1.amazonaws.com/my.bucket", AWS);
    assert!(!read_back::<S3Config>(&spec).enable_virtual_host_style);
}

#[test]
fn s3_compatible_servers_are_addressed_by_path_in_us_east_1() {
    use opendal::services::S3Config;
    let mut env = AWS.to_vec();
    env.push(("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEsession"));
    let spec = ok("s3:http://localhost:9000/restic", &env);
    let c: S3Config = read_back(&spec);
    assert_eq!(c.endpoint.as_deref(), Some("http://localhost:9000"));
    assert_eq!(c.bucket, "restic");
    assert_eq!(c.root.as_deref(), Some("/"));
    assert_eq!(c.region.as_deref(), Some("us-east-1"));
    assert_eq!(c.session_token.as_deref(), Some("FwoGZXIvYXdzEsession"));
    assert!(!c.enable_virtual_host_style);
    builds(&spec);
    let mut env = AWS.to_vec();
    env.push(("AWS_DEFAULT_REGION", "garage"));
    let spec = ok("s3:https://server:9443/bucket_name/a/b", &env);
    let c: S3Config = read_back(&spec);
    assert_eq!(c.endpoint.as_deref(), Some("https://server:9443"));
    assert_eq!(c.root.as_deref(), Some("/a/b"));
    assert_eq!(c.region.as_deref(), Some("garage"));
    let spec = ok("s3://minio:9000/bucket", AWS);
    assert_eq!(
        read_back::<S3Config>(&spec).endpoint.as_deref(),
        Some("https://minio:9000")
    );
}

#[test]
fn s3_without_the_keys_restic_gets_is_unmappable() {
    assert!(no("s3:http://localhost:9000/restic", &[]).starts_with("s3 without both"));
    assert!(no("s3:http://localhost:9000/restic", &AWS[..1]).starts_with("s3 without both"));
    let mut env = AWS.to_vec();
    env.push(("RESTIC_AWS_ASSUME_ROLE_ARN", "arn:aws:iam::1:role/r"));
    assert!(no("s3:http://localhost:9000/restic", &env).contains("RESTIC_AWS_ASSUME_ROLE_ARN"));
    let mut env = AWS.to_vec();
    env.push(("RESTIC_CACERT", "/ca.pem"));
    assert!(no("s3:https://minio/b", &env).contains("RESTIC_CACERT"));
    assert!(no("s3:https://minio", AWS).contains("no host or bucket"));
}

#[test]
fn b2_is_unmappable_and_says_to_use_its_s3_api() {
    let env = [("B2_ACCOUNT_ID", "0012"), ("B2_ACCOUNT_KEY", "b2secretkey")];
    let reason = no("b2:bucketname:path/to/repo", &env);
    assert!(reason.starts_with("b2:bucket:path"), "{reason}");
    assert!(reason.contains("bucket's id") && reason.contains("S3-compatible"));
}

#[test]
fn azure_takes_the_key_or_the_sas_token() {
    use opendal::services::AzblobConfig;
    let name = ("AZURE_ACCOUNT_NAME", "acct");
    let spec = ok(
        "azure:foo:/",
        &[name, ("AZURE_ACCOUNT_KEY", "c2VjcmV0YXp1cmVrZXk=")],
    );
    assert_eq!(spec.repository, "opendal:azblob");
    let c: AzblobConfig = read_back(&spec);
    assert_eq!(c.container, "foo");
    assert_eq!(c.root.as_deref(), Some("/"));
    assert_eq!(
        c.endpoint.as_deref(),
        Some("https://acct.blob.core.windows.net")
    );
    assert_eq!(c.account_name.as_deref(), Some("acct"));
    assert_eq!(c.account_key.as_deref(), Some("c2VjcmV0YXp1cmVrZXk="));
    assert_eq!(c.sas_token, None);
    builds(&spec);
    let env = [
        name,
        ("AZURE_ACCOUNT_SAS", "?sv=2022&sig=sassecret"),
        ("AZURE_ENDPOINT_SUFFIX", "core.chinacloudapi.cn"),
    ];
    let spec = ok("azure:foo:/restic/repo/", &env);
    let c: AzblobConfig = read_back(&spec);
    assert_eq!(c.root.as_deref(), Some("/restic/repo"));
    assert_eq!(
        c.endpoint.as_deref(),
        Some("https://acct.blob.core.chinacloudapi.cn")
    );
    assert_eq!(c.sas_token.as_deref(), Some("sv=2022&sig=sassecret"));
    assert_eq!(c.account_key, None);
    builds(&spec);
    assert!(no("azure:foo:/", &[name]).contains("az login"));
    assert!(
        no(
            "azure:foo:/",
            &[("AZURE_ACCOUNT_KEY", "c2VjcmV0YXp1cmVrZXk=")]
        )
        .contains("AZURE_ACCOUNT_NAME")
    );
    let forced = [
        name,
        ("AZURE_ACCOUNT_KEY", "c2VjcmV0YXp1cmVrZXk="),
        ("AZURE_FORCE_CLI_CREDENTIAL", "true"),
    ];
    assert!(no("azure:foo:/", &forced).contains("AZURE_FORCE_CLI_CREDENTIAL"));
    assert!(no("azure:foo", &[name]).contains("azure:NAME:/path"));
}

#[test]
fn gs_takes_a_token_or_a_credentials_file() {
    use opendal::services::GcsConfig;
    let file = ("GOOGLE_APPLICATION_CREDENTIALS", "/run/secrets/gcs.json");
    let spec = ok("gs:foo:/", &[file, ("GOOGLE_PROJECT_ID", "123123123123")]);
    assert_eq!(spec.repository, "opendal:gcs");
    let c: GcsConfig = read_back(&spec);
    assert_eq!(c.bucket, "foo");
    assert_eq!(c.root.as_deref(), Some("/"));
    assert_eq!(c.credential_path.as_deref(), Some("/run/secrets/gcs.json"));
    assert_eq!(c.token, None);
    assert!(c.disable_config_load && c.disable_vm_metadata);
    builds(&spec);
    // restic: the token turns the other ways off.
    let spec = ok(
        "gs:foo:/repo",
        &[file, ("GOOGLE_ACCESS_TOKEN", "ya29.googletoken")],
    );
    let c: GcsConfig = read_back(&spec);
    assert_eq!(c.token.as_deref(), Some("ya29.googletoken"));
    assert_eq!(c.credential_path, None);
    assert_eq!(c.root.as_deref(), Some("/repo"));
    builds(&spec);
    assert!(no("gs:foo:/", &[("GOOGLE_PROJECT_ID", "1")]).contains("default Google account"));
}

#[test]
fn swift_takes_a_ready_token_only() {
    use opendal::services::SwiftConfig;
    let env = [
        ("OS_STORAGE_URL", "https://swift.example/v1/AUTH_acct"),
        ("OS_AUTH_TOKEN", "swifttoken123"),
    ];
    let spec = ok("swift:container_name:/path", &env);
    assert_eq!(spec.repository, "opendal:swift");
    let c: SwiftConfig = read_back(&spec);
    assert_eq!(
        c.endpoint.as_deref(),
        Some("https://swift.example/v1/AUTH_acct")
    );
    assert_eq!(c.container.as_deref(), Some("container_name"));
    assert_eq!(c.root.as_deref(), Some("/path"));
    assert_eq!(c.token.as_deref(), Some("swifttoken123"));
    builds(&spec);
    let keystone = [
        ("OS_AUTH_URL", "https://keystone/v3"),
        ("OS_USERNAME", "me"),
        ("OS_PASSWORD", "ospassword"),
        ("OS_PROJECT_NAME", "p"),
    ];
    let reason = no("swift:container_name:/path", &keystone);
    assert!(reason.starts_with("swift with a Keystone"), "{reason}");
    assert!(reason.contains("OS_STORAGE_URL and OS_AUTH_TOKEN"));
    assert!(no("swift:container_name:path", &env).contains("swift:container:/path"));
}

#[test]
fn sftp_maps_both_forms_with_an_absolute_path() {
    use opendal::services::SftpConfig;
    let spec = ok("sftp:user@host:/srv/restic-repo", &[]);
    assert_eq!(spec.repository, "opendal:sftp");
    let c: SftpConfig = read_back(&spec);
    assert_eq!(c.endpoint.as_deref(), Some("host"));
    assert_eq!(c.user.as_deref(), Some("user"));
    assert_eq!(c.root.as_deref(), Some("/srv/restic-repo"));
    builds(&spec);
    let spec = ok("sftp://user@[::1]:2222//srv/restic-repo", &[]);
    let c: SftpConfig = read_back(&spec);
    assert_eq!(c.endpoint.as_deref(), Some("ssh://[::1]:2222"));
    assert_eq!(c.user.as_deref(), Some("user"));
    assert_eq!(c.root.as_deref(), Some("/srv/restic-repo"));
    // A host from ~/.ssh/config, a domain-confined user.
    let c: SftpConfig = read_back(&ok("sftp:foo:/srv/restic-repo", &[]));
    assert_eq!((c.endpoint.as_deref(), c.user), (Some("foo"), None));
    let c: SftpConfig = read_back(&ok("sftp:user@domain@host:/r", &[]));
    assert_eq!(c.user.as_deref(), Some("user@domain"));
    assert_eq!(c.endpoint.as_deref(), Some("host"));
    for relative in [
        "sftp:user@host:restic-repo",
        "sftp://user@host:2222/restic-repo",
    ] {
        assert!(
            no(relative, &[]).starts_with("sftp with a relative path"),
            "{relative}"
        );
    }
    assert!(no("sftp:host", &[]).contains("no host or path"));
}

#[test]
fn rclone_maps_unless_rclone_variables_are_set() {
    let spec = ok("rclone:b2prod:yggdrasil", &[("RESTIC_CACHE_DIR", "/cache")]);
    assert_eq!(spec.repository, "rclone:b2prod:yggdrasil");
    assert_eq!(opt(&spec, "timeout"), Some(REST_TIMEOUT));
    assert_eq!(spec.cache_dir, Some(PathBuf::from("/cache/rustic")));
    let reason = no(
        "rclone:foo:bar",
        &[("RCLONE_CONFIG_PASS", "rcloneconfpass")],
    );
    assert!(
        reason.starts_with("rclone with RCLONE_CONFIG_PASS set"),
        "{reason}"
    );
}

#[test]
fn the_sidecar_settings_map_like_the_worker_payload() {
    use crate::config::Config;
    use crate::env::Env;
    let pairs = [
        ("RESTIC_REPOSITORY", "s3:http://minio:9000/b/p"),
        ("RESTIC_PASSWORD", "pw"),
        ("AWS_ACCESS_KEY_ID", "AKIDSECRETKEYID"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsecret"),
        ("RESTIC_CACHE_DIR", "/cache"),
    ];
    let config = Config::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap();
    let from_settings = map_settings(&config.restic).unwrap();
    let payload: BTreeMap<String, String> = config
        .restic
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect();
    assert_eq!(
        map(&payload["RESTIC_REPOSITORY"], &payload).unwrap(),
        from_settings
    );
    assert_eq!(opt(&from_settings, "root"), Some("/p"));
}

#[test]
fn debug_hides_every_value_it_does_not_know_to_be_plain() {
    let spec = BackendSpec {
        repository: "rest:https://u:restpass@h/".into(),
        options: [("some_new_key".to_string(), "b2secretkey".to_string())].into(),
        cache_dir: None,
    };
    let shown = format!("{spec:?}");
    assert!(
        !shown.contains("restpass") && !shown.contains("b2secretkey"),
        "{shown}"
    );
    assert!(shown.contains("some_new_key") && shown.contains("<hidden>"));
}

#[test]
fn redact_hides_the_secrets_rustic_may_print() {
    let spec = ok("s3:http://localhost:9000/restic", AWS);
    assert_eq!(
        spec.redact("signing with AKIDSECRETKEYID/wJalrXUtnFEMIsecret for restic at /"),
        "signing with <hidden>/<hidden> for restic at /"
    );
    let env = [
        ("RESTIC_REST_USERNAME", "u"),
        ("RESTIC_REST_PASSWORD", "restpass@"),
    ];
    let spec = ok("rest:https://host:8000/repo/", &env);
    let text = format!(
        "error sending request for url ({}config)",
        &spec.repository[5..]
    );
    assert_eq!(
        spec.redact(&text),
        "error sending request for url (https://u:***@host:8000/repo/config)"
    );
}
