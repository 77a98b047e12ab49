//! The dashboard at `/ui`: a page and a few scripts, compiled into the binary, that call the
//! public JSON API from the browser with the token the user enters (kept in the browser's
//! local storage). The server only hands out the files: every figure the dashboard shows, and
//! every action it takes, goes through `/api/v1` and its authentication like any client's.
//!
//! The files are served with a content security policy that allows scripts, styles and
//! requests to this origin only: the scripts build the page with DOM calls and never insert
//! text as HTML, so a job's name or output cannot become markup.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::api::{ApiError, Endpoint};

/// A file of the dashboard: its path under `/ui/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const fn script(path: &'static str, body: &'static str) -> Asset {
    Asset {
        path,
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

const ASSETS: &[Asset] = &[
    script("app.js", include_str!("assets/app.js")),
    script("api.js", include_str!("assets/api.js")),
    script("dom.js", include_str!("assets/dom.js")),
    script(
        "pages/overview.js",
        include_str!("assets/pages/overview.js"),
    ),
    script("pages/jobs.js", include_str!("assets/pages/jobs.js")),
    script("pages/job.js", include_str!("assets/pages/job.js")),
    script(
        "pages/schedules.js",
        include_str!("assets/pages/schedules.js"),
    ),
    script("pages/create.js", include_str!("assets/pages/create.js")),
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        path: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/icon.svg"),
    },
];

const INDEX: &str = include_str!("assets/index.html");

/// Scripts, styles, images and requests from this origin only; no frames, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Registers `/ui` (redirected to `/ui/`), the page at `/ui/` and its files. `token_required`
/// tells the page to ask for a token before its first request.
pub fn routes(config: &mut web::ServiceConfig, token_required: bool) {
    let index = INDEX.replace(
        "{{token-required}}",
        if token_required { "true" } else { "false" },
    );
    config
        .app_data(web::Data::new(Index(web::Bytes::from(index))))
        .service(Endpoint::new("/ui").open().get(redirect).build())
        .service(Endpoint::new("/ui/").open().get(page).build())
        .service(Endpoint::new("/ui/{file:.+}").open().get(asset).build());
}

/// The page, with whether a token is needed written in.
struct Index(web::Bytes);

async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

async fn page(index: web::Data<Index>) -> HttpResponse {
    served("text/html; charset=utf-8", index.0.clone())
}

async fn asset(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let file = request.match_info().get("file").unwrap_or_default();
    ASSETS
        .iter()
        .find(|asset| asset.path == file)
        .map(|asset| {
            served(
                asset.content_type,
                web::Bytes::from_static(asset.body.as_bytes()),
            )
        })
        .ok_or_else(|| ApiError::not_found(format!("the dashboard has no file `{file}`")))
}

/// Answers with `body`, which is shared, not copied: the files live in the binary.
fn served(content_type: &'static str, body: web::Bytes) -> HttpResponse {
    let mut response = HttpResponse::Ok()
        .content_type(content_type)
        // The files change with the binary: the browser asks again each time (and the
        // process answers from memory).
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}
