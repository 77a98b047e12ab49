//! The OpenAPI description: served to every caller, it describes every route the router
//! serves (the test command also fuzzes the running service from it: scripts/fuzz-api).

use std::collections::BTreeSet;

use kairos::config::{AccessRole, Backend, TokenEntry};
use serde_json::Value;

use crate::helpers::{settings_for, spawn_app_with};
use crate::roles::routes;

#[actix_web::test]
async fn the_description_covers_every_route_and_needs_no_token() {
    let mut settings = settings_for(Backend::Standalone);
    let entry: TokenEntry = serde_json::from_value(serde_json::json!(
        {"name": "someone", "role": AccessRole::Admin.as_str(), "sha256": "0".repeat(64)}
    ))
    .expect("a token entry");
    settings.auth.tokens = vec![entry];
    let app = spawn_app_with(settings).await;

    let answer = app.get("/api/v1/openapi.json").await;
    assert_eq!(answer.status(), 200, "open without a token");
    let description: Value = answer.json().await.expect("JSON");
    assert_eq!(description["openapi"], "3.1.0");
    let described: BTreeSet<(String, String)> = description["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|key| ["get", "post", "patch", "delete", "put"].contains(&key.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut served: BTreeSet<(String, String)> = routes()
        .into_iter()
        .filter(|(method, _, _)| method != reqwest::Method::HEAD)
        .map(|(method, path, _)| {
            let templated = path
                .split('/')
                .map(|segment| match segment.split_once(':') {
                    _ if segment.parse::<uuid::Uuid>().is_ok() => "{id}".to_owned(),
                    Some((id, action)) if id.parse::<uuid::Uuid>().is_ok() => {
                        format!("{{id}}:{action}")
                    }
                    _ if segment == "executor" => "{kind}".to_owned(),
                    _ => segment.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            (method.to_string(), templated)
        })
        .collect();
    for probe in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        served.insert(("GET".to_owned(), probe.to_owned()));
    }
    assert_eq!(described, served);
    // Every operation says what its errors look like.
    let created = &description["paths"]["/api/v1/jobs"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "503"] {
        assert!(
            created.get(status).is_some(),
            "POST /api/v1/jobs lacks {status}"
        );
    }

    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("a page");
    assert!(html.contains("swagger-ui"), "{html}");
}
