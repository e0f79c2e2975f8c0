//! Regression tests for the reliability and security defects of issue 11:
//! each test here failed before its fix. Kept together so the list of
//! hardening rules is one file to read.

use reqwest::{Method, StatusCode};

use crate::helpers::Backend;
use crate::spawn::spawn_app;

/// Item 6: a made-up method or a made-up path never becomes a `/metrics`
/// label (each distinct label value is a series kept until restart).
async fn metrics_labels_are_never_caller_supplied(b: Backend) {
    let app = spawn_app(b).await;
    let odd = Method::from_bytes(format!("BREWCOFFEE{}", "X".repeat(2000)).as_bytes()).unwrap();
    for path in ["/api/issues", "/zz-made-up-path-4711"] {
        let r = app.request(odd.clone(), path, None, None).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
    }
    let r = app
        .request(Method::GET, "/zz-made-up-path-4712", None, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let metrics = app.request(Method::GET, "/metrics", None, None).await.text;
    assert!(
        !metrics.contains("BREWCOFFEE"),
        "a made-up method became a label"
    );
    assert!(
        !metrics.contains("zz-made-up-path"),
        "a made-up path became a label"
    );
    assert!(
        metrics.contains(r#"method="other""#),
        "the odd method is counted as other"
    );
    assert!(metrics.contains(r#"route="unmatched""#), "{metrics}");
    app.stop().await;
}

both_backends!(metrics_labels_are_never_caller_supplied);
