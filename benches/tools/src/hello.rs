//! `reward-bench hello-server`: bare axum answering every request with a small JSON body.
//! The load generator measures it with the same requests to show the HTTP ceiling of the
//! machine, so the engine's figures can be read as a fraction of it.

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

async fn answer(body: Bytes) -> impl IntoResponse {
    // Touch the body so the ceiling includes reading it, as the engine does.
    let length = body.len();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{{\"ok\":true,\"bytes\":{length}}}"))
}

pub fn router() -> Router {
    Router::new().fallback(answer)
}

pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "hello server listening");
    axum::serve(listener, router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
