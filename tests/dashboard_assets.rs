//! The web dashboard's files, served by the real server: the page references its module entry
//! point, every file the page and the modules reference (read from the files, not from a list)
//! is served with its content type, every file in `src/dashboard/assets/` is reachable, unknown
//! files are 404, and the page loads without a token while the API still needs one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::time::Duration;

use common::{start_server, test_config, RedisServer};
use ocpp_meter::RunningServer;

const TOKEN: &str = "dashboard-test-token-0123456789";

/// One response: status, header lookup, body.
struct Fetched {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 text")
    }
}

async fn fetch(server: &RunningServer, path: &str, token: Option<&str>) -> Fetched {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut request = client.get(format!("http://{}{}", server.http_addr, path));
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = response.body().limit(8 << 20).await.expect("body").to_vec();
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

/// The value of every `attr="..."` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .filter(|(i, _)| html[..*i].chars().last().is_some_and(char::is_whitespace))
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').expect("closing quote")].to_owned()
        })
        .collect()
}

/// The specifiers of static `import ... from "x"`, `import "x"` and `export ... from "x"` in a
/// module (comments and strings elsewhere are not imports, so only statement starts count).
fn imports(module: &str) -> Vec<String> {
    let mut specifiers = Vec::new();
    let mut statement = String::new();
    let mut in_import = false;
    for line in module.lines() {
        let trimmed = line.trim_start();
        if !in_import
            && (trimmed.starts_with("import ")
                || trimmed.starts_with("import{")
                || trimmed.starts_with("import\"")
                || (trimmed.starts_with("export ") && trimmed.contains(" from"))
                || trimmed.starts_with("export {")
                || trimmed.starts_with("export *"))
        {
            in_import = true;
            statement.clear();
        }
        if in_import {
            statement.push_str(trimmed);
            statement.push(' ');
            let end = statement.trim_end();
            let closes = end.ends_with(';')
                || end.ends_with('"')
                || end.ends_with('\'')
                || end.ends_with("\";")
                || end.ends_with("';");
            if closes {
                in_import = false;
                let body = end.trim_end_matches(';');
                let quote = body.chars().last().expect("a quote");
                if quote == '"' || quote == '\'' {
                    let inner = &body[..body.len() - 1];
                    let start = inner.rfind(quote).expect("opening quote");
                    specifiers.push(inner[start + 1..].to_owned());
                }
                // `export { a, b };` without `from` names no module.
            }
        }
    }
    assert!(
        !module.contains("import("),
        "dynamic import(): teach tests/dashboard_assets.rs to follow it"
    );
    specifiers
}

/// Resolves `specifier` against the URL path of the module that imports it.
fn resolve(base: &str, specifier: &str) -> String {
    assert!(
        specifier.starts_with("./") || specifier.starts_with("../") || specifier.starts_with('/'),
        "{base} imports {specifier:?}: only relative or absolute paths on this server work without a build step"
    );
    if specifier.starts_with('/') {
        return specifier.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for segment in specifier.split('/') {
        match segment {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn expected_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html",
        other => panic!("{path}: no expected content type for {other:?}"),
    }
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("assets dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        if entry.file_type().expect("file type").is_dir() {
            files_under(&entry.path(), &format!("{rel}/"), out);
        } else {
            out.push(rel);
        }
    }
}

#[actix_web::test]
async fn the_dashboard_and_every_file_it_references_are_served_without_a_token() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.admin.tokens = vec![TOKEN.to_owned()];
    let server = start_server(config).await;

    // The API itself still needs the token.
    assert_eq!(
        fetch(&server, "/api/v1/charge-points", None).await.status,
        401
    );
    assert_eq!(
        fetch(&server, "/api/v1/charge-points", Some(TOKEN))
            .await
            .status,
        200
    );

    let page = fetch(&server, "/", None).await;
    assert_eq!(page.status, 200, "/ without a token");
    assert!(page.header("content-type").starts_with("text/html"));
    assert_eq!(page.header("cache-control"), "no-cache");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe"), "{csp}");
    let html = page.text();
    assert!(
        html.contains(r#"<script type="module" src="/dashboard/app.js"></script>"#),
        "the page loads the module entry point: {html}"
    );

    // Walk the page's references and the module graph.
    let mut queue: VecDeque<String> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .filter(|r| !r.starts_with('#'))
        .inspect(|r| {
            assert!(
                r.starts_with("/dashboard/"),
                "the page references {r:?}: everything must be served from /dashboard/ (no CDN)"
            )
        })
        .collect();
    assert!(queue.len() >= 4, "references found: {queue:?}");
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let file = fetch(&server, &path, None).await;
        assert_eq!(file.status, 200, "{path}");
        let content_type = file.header("content-type");
        assert!(
            content_type.starts_with(expected_type(&path)),
            "{path} served as {content_type:?}"
        );
        assert_eq!(file.header("x-content-type-options"), "nosniff", "{path}");
        assert!(file.header("cache-control").contains("max-age"), "{path}");
        if path.ends_with(".js") {
            for specifier in imports(&file.text()) {
                queue.push_back(resolve(&path, &specifier));
            }
        }
    }
    for module in [
        "/dashboard/app.js",
        "/dashboard/vendor/uPlot.esm.js",
        "/dashboard/pages/detail.js",
        "/dashboard/pages/fleet.js",
    ] {
        assert!(
            seen.contains(module),
            "{module} not reached from the page: {seen:?}"
        );
    }

    // Every file shipped in src/dashboard/assets is served (a file missing from the table in
    // src/dashboard/mod.rs fails here); index.html is the page at `/`, README.md is for people.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard/assets");
    let mut files = Vec::new();
    files_under(&dir, "", &mut files);
    for file in files {
        if file == "index.html" || file.ends_with("README.md") {
            continue;
        }
        let path = format!("/dashboard/{file}");
        assert_eq!(fetch(&server, &path, None).await.status, 200, "{path}");
    }

    // Unknown files are 404 (also without a token: nothing to hide), and the page revalidates.
    for missing in ["/dashboard/nope.js", "/dashboard/", "/dashboard/vendor/"] {
        assert_eq!(fetch(&server, missing, None).await.status, 404, "{missing}");
    }
    let etag = page.header("etag");
    assert!(!etag.is_empty());
    let client = awc::Client::default();
    let revalidated = client
        .get(format!("http://{}/", server.http_addr))
        .insert_header(("If-None-Match", etag))
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status().as_u16(), 304);
    server.shutdown().await;
}

#[actix_web::test]
async fn admin_dashboard_false_turns_it_off() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.admin.dashboard = false;
    let server = start_server(config).await;
    assert_eq!(fetch(&server, "/", None).await.status, 404);
    assert_eq!(fetch(&server, "/dashboard/app.js", None).await.status, 404);
    assert_eq!(fetch(&server, "/health", None).await.status, 200);
    server.shutdown().await;
}

#[test]
fn the_import_scanner_reads_every_form() {
    let module = r#"
// import "./not-an-import.js" in a comment is not at a statement start
import uPlot from "./vendor/uPlot.esm.js";
import { a,
  b } from '../x.js';
import "./side-effect.js";
export { c } from "./c.js";
export * from "./d.js";
export { local };
const s = "import nothing";
"#;
    assert_eq!(
        imports(module),
        [
            "./vendor/uPlot.esm.js",
            "../x.js",
            "./side-effect.js",
            "./c.js",
            "./d.js"
        ]
    );
    assert_eq!(
        resolve("/dashboard/pages/detail.js", "../api.js"),
        "/dashboard/api.js"
    );
    assert_eq!(
        resolve("/dashboard/app.js", "./pages/detail.js"),
        "/dashboard/pages/detail.js"
    );
}
