//! Servers the tests start on loopback for `http` jobs to call.

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::WAIT_LIMIT;

/// What a server that never answers saw of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Connection {
    /// A request came in.
    Request,
    /// The client closed the connection.
    Closed,
}

/// A loopback server that reads requests and never answers, telling what each of its
/// connections does.
pub async fn silent_server() -> (String, mpsc::UnboundedReceiver<Connection>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    let (tell, events) = mpsc::unbounded_channel();
    actix_web::rt::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tell = tell.clone();
            actix_web::rt::spawn(async move {
                let mut buffer = [0_u8; 4096];
                let mut told = false;
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => {
                            let _ = tell.send(Connection::Closed);
                            return;
                        }
                        Ok(_) if !told => {
                            told = true;
                            let _ = tell.send(Connection::Request);
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (address, events)
}

/// What the silent server tells next, within [`WAIT_LIMIT`].
pub async fn next_event(events: &mut mpsc::UnboundedReceiver<Connection>) -> Option<Connection> {
    tokio::time::timeout(WAIT_LIMIT, events.recv())
        .await
        .expect("the server hears from Kairos within the wait")
}
