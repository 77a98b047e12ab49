//! How the dashboard's files are served: only with `http.ui`, saying whether a token is
//! needed, and under a content security policy that allows nothing from another origin (its
//! behaviour in a browser is `tests/process/dashboard.rs`).

use kairos::config::Backend;

use crate::helpers::{settings_for, spawn_app_with};

#[actix_web::test]
async fn the_dashboard_allows_no_other_origin_and_can_be_turned_off() {
    let app = spawn_app_with(settings_for(Backend::Standalone)).await;
    let page = app.get("/ui/").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let body = page.text().await.expect("text");
    assert!(
        body.contains(r#"name="kairos-token-required" content="false""#),
        "no token is needed without tokens: {body}"
    );
    let script = app.get("/ui/app.js").await;
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(app.get("/ui/default.toml").await.status(), 404);
    let bare = app.get("/ui").await;
    assert_eq!(bare.status(), 200, "followed to /ui/");

    let mut settings = settings_for(Backend::Standalone);
    settings.auth.tokens =
        vec![serde_json::from_value(serde_json::json!("a-plain-token")).expect("a token entry")];
    let app = spawn_app_with(settings).await;
    let body = app.get("/ui/").await.text().await.expect("text");
    assert!(body.contains(r#"name="kairos-token-required" content="true""#));
    // The page is open; what it reads is not.
    assert_eq!(app.get("/api/v1/stats").await.status(), 401);

    let mut settings = settings_for(Backend::Standalone);
    settings.http.ui = false;
    let app = spawn_app_with(settings).await;
    assert_eq!(app.get("/ui/").await.status(), 404);
    assert_eq!(app.get("/ui/app.js").await.status(), 404);
}
