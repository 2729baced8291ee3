//! Key rotation between two runs of the server keeps every stored credential working.

use imgstat::server::{RotateArgs, rotate_credential_key};
use imgstat_testkit::{Credentials, Registry, TestContainer, TestImage, TokenPolicy};

use crate::common::{Server, registry_entry};

#[tokio::test]
async fn rotation_keeps_credentials_working() {
    let alice = Credentials::random("alice");
    let bob = Credentials::random("bob");
    let basic_registry = Registry::with_htpasswd([&alice]);
    let policy = TokenPolicy::new().user(&bob).pull(&bob.username, "*");
    let token_registry = Registry::with_token_auth(policy);
    let basic_image = TestImage::build(&basic_registry, "team/basic", "1");
    let token_image = TestImage::build(&token_registry, "team/token", "1");
    let on_basic = TestContainer::create(basic_image.reference(), "rotate-basic");
    let on_token = TestContainer::create(token_image.reference(), "rotate-token");
    let server = Server::start().await;
    let basic = registry_entry(
        "basic",
        basic_registry.host(),
        &alice.username,
        &alice.password,
    );
    let token = registry_entry("token", token_registry.host(), &bob.username, &bob.password);
    server.create_registry(basic).await;
    server.create_registry(token).await;
    for container in [&on_basic, &on_token] {
        let status = server.forced_status(container.id()).await;
        assert_eq!(status["Status"], "updated", "before rotation: {status}");
    }
    let key_path = server.data_dir.path().join("credential.key");
    let old_key = std::fs::read(&key_path).unwrap();

    let server = server
        .restart_after(async |data_dir| {
            let args = RotateArgs {
                data_dir: Some(data_dir.to_owned()),
                credential_key: None,
                new_credential_key: None,
            };
            let rotation = rotate_credential_key(args).await.unwrap();
            assert_eq!(rotation.resealed, 2);
        })
        .await;

    assert_ne!(std::fs::read(&key_path).unwrap(), old_key);
    for container in [&on_basic, &on_token] {
        let status = server.forced_status(container.id()).await;
        assert_eq!(status["Status"], "updated", "after rotation: {status}");
    }
    let token_server = token_registry.token_server().unwrap();
    let last = token_server.requests().last().cloned().unwrap();
    assert_eq!(last.account.as_deref(), Some(bob.username.as_str()));
}
