//! `grpc.health.v1.Health` with the protocol's semantics (implemented here because
//! `tonic-health`'s own service answers `Watch` of an unknown service with `NOT_FOUND`): `Check`
//! of an unknown service is `NOT_FOUND`; `Watch` sends the status now and at every change, and
//! for an unknown service sends `SERVICE_UNKNOWN` and keeps the stream open (sending the status
//! if the service appears). Watch streams end when the server shuts down, after they have sent
//! `NOT_SERVING`. Health calls need no token.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::log;

/// The services' statuses, shared by the health service and whoever changes them.
#[derive(Debug, Clone)]
pub struct HealthState {
    statuses: watch::Sender<HashMap<String, ServingStatus>>,
    /// Set once the server shuts down: Watch streams end.
    closing: watch::Sender<bool>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            statuses: watch::Sender::new(HashMap::new()),
            closing: watch::Sender::new(false),
        }
    }
}

impl HealthState {
    /// Sets one service's status (adding the service).
    pub fn set(&self, service: &str, status: ServingStatus) {
        self.statuses
            .send_if_modified(|m| m.insert(service.to_owned(), status) != Some(status));
    }

    /// Sets every known service's status.
    pub fn set_all(&self, status: ServingStatus) {
        self.statuses.send_if_modified(|m| {
            let mut changed = false;
            for s in m.values_mut() {
                changed |= *s != status;
                *s = status;
            }
            changed
        });
    }

    /// A service's status, if it is known.
    pub fn get(&self, service: &str) -> Option<ServingStatus> {
        self.statuses.borrow().get(service).copied()
    }

    /// Ends every Watch stream (each sends the latest status first).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// The gRPC service.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            state: Arc::new(self.clone()),
        })
    }
}

/// The `grpc.health.v1.Health` implementation.
#[derive(Debug, Clone)]
pub struct HealthService {
    state: Arc<HealthState>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let started = Instant::now();
        let service = request.into_inner().service;
        let r = match self.state.get(&service) {
            Some(s) => Ok(Response::new(answer(s))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        };
        let code = r.as_ref().map_or_else(tonic::Status::code, |_| Code::Ok);
        log::health("Health/Check", &service, started, code);
        r
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let started = Instant::now();
        let service = request.into_inner().service;
        let mut statuses = self.state.statuses.subscribe();
        let mut closing = self.state.closing.subscribe();
        let (tx, rx) = mpsc::channel(4);
        let name = service.clone();
        let current = move |rx: &mut watch::Receiver<HashMap<String, ServingStatus>>| {
            rx.borrow_and_update()
                .get(&service)
                .copied()
                .unwrap_or(ServingStatus::ServiceUnknown)
        };
        let mut last = current(&mut statuses);
        let first = tx.clone();
        // The first answer is queued before the call returns (the channel has room).
        let _ = first.try_send(Ok(answer(last)));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = statuses.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let now = current(&mut statuses);
                        if now != last {
                            last = now;
                            if tx.send(Ok(answer(now))).await.is_err() {
                                break;
                            }
                        }
                    }
                    () = async { let _ = closing.wait_for(|c| *c).await; } => {
                        let now = current(&mut statuses);
                        if now != last {
                            let _ = tx.send(Ok(answer(now))).await;
                        }
                        break;
                    }
                    () = tx.closed() => break,
                }
            }
        });
        log::health("Health/Watch", &name, started, Code::Ok);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn status_of(r: Option<Result<HealthCheckResponse, Status>>) -> i32 {
        r.expect("an answer").expect("not an error").status
    }

    #[tokio::test]
    async fn watch_follows_a_service_that_appears_and_changes() {
        let state = HealthState::default();
        state.set("", ServingStatus::Serving);
        let svc = HealthService {
            state: Arc::new(state.clone()),
        };
        let request = || {
            Request::new(HealthCheckRequest {
                service: "later".into(),
            })
        };
        assert_eq!(
            svc.check(request()).await.unwrap_err().code(),
            Code::NotFound
        );
        let mut w = svc.watch(request()).await.unwrap().into_inner();
        assert_eq!(
            status_of(w.next().await),
            ServingStatus::ServiceUnknown as i32
        );
        // Another service's change sends nothing; this one's appearance and changes do.
        state.set("", ServingStatus::NotServing);
        state.set("later", ServingStatus::Serving);
        assert_eq!(status_of(w.next().await), ServingStatus::Serving as i32);
        state.set("later", ServingStatus::Serving);
        state.set_all(ServingStatus::NotServing);
        assert_eq!(status_of(w.next().await), ServingStatus::NotServing as i32);
        let r = svc.check(request()).await.unwrap().into_inner();
        assert_eq!(r.status, ServingStatus::NotServing as i32);
        state.close();
        assert!(w.next().await.is_none());
    }
}
