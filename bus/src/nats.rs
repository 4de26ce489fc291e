//! The scale-out bus: NATS JetStream. One WorkQueue-retention file stream per queue, bounded by
//! `max_messages`/`max_bytes` with discard-new (publishers are pushed back, never silently
//! dropped), de-duplication by `Nats-Msg-Id`, one durable pull consumer per role shared by all its
//! replicas, and a KV bucket for checkpoints.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind};
use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::{
    Bus, BusError, CheckpointStore, Delivery, Names, OutgoingMessage, Published, QueueConfig,
    QueueDepth, Settle, StreamKind, Versioned, WorkQueue,
};

/// How to authenticate to NATS. Secrets are never printed.
#[derive(Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// A user NKey seed (`SU…`): the server knows the public key, the seed signs its nonce.
    NkeySeed(String),
    /// A `.creds` file: a user JWT and its NKey seed (NATS accounts, decentralized auth).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => formatter.write_str("None"),
            Self::UserPassword { user, .. } => {
                write!(formatter, "UserPassword({user}, [redacted])")
            }
            Self::Token(_) => formatter.write_str("Token([redacted])"),
            Self::NkeySeed(_) => formatter.write_str("NkeySeed([redacted])"),
            Self::CredsFile(path) => write!(formatter, "CredsFile({})", path.display()),
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct NatsConnect {
    /// One or more server URLs, comma separated.
    pub url: String,
    pub auth: NatsAuth,
    /// Extra CA certificate for TLS.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// Refuse to talk to a server that does not offer TLS.
    pub tls_required: bool,
    /// Shown in the server's connection list (`nats server report connections`).
    pub client_name: String,
    /// Copies JetStream keeps of each stream and of the KV bucket this bus creates (1-5).
    pub replicas: usize,
    /// How long connecting waits for JetStream to answer before giving up: a role waits out a
    /// restarting server ([`DEFAULT_PATIENCE`]); a command a person waits for, less.
    pub patience: Duration,
    /// The JetStream domain of the hub, for a client of a leaf node (`None`: the server's own).
    pub domain: Option<String>,
}

/// `detail` (a NATS client's error) with what it means for a job when that is not plain from
/// it: JetStream "temporarily unavailable" (10008), or a request to a stream that no server
/// answers (503, no responders), is on a cluster a lost quorum; a request that timed out may be
/// one too.
pub(crate) fn explain(detail: &str) -> String {
    const QUORUM: &str = "on a cluster a majority of the servers holding each stream (nats.replicas) must be up and connected, 2 of 3";
    let lower = detail.to_ascii_lowercase();
    if detail.contains("error code 10008")
        || detail.contains("503")
        || lower.contains("no responders")
    {
        format!(
            "{detail} — no NATS server answers for it now (no quorum: {QUORUM}); the job waits until one does"
        )
    } else if detail.contains("error code 10158") {
        format!(
            "{detail} — the stream still stores an earlier attempt of this message (it is changing leader, or lost its quorum: {QUORUM}); the job tries again"
        )
    } else if lower.contains("no stream found") {
        // What a publish nobody answers is reported as: no server leads the stream now.
        format!(
            "{detail} — no NATS server answers for the stream now (no quorum: {QUORUM}; or the job's streams were deleted); the job waits until one does"
        )
    } else if lower.contains("timed out") {
        format!(
            "{detail} — NATS did not answer in time: a server restarting or overloaded, or no quorum ({QUORUM}); the job waits until it answers"
        )
    } else {
        detail.to_owned()
    }
}

/// How long a role waits for JetStream to answer when it connects.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

impl NatsConnect {
    /// Plain connection without auth or TLS (tests, a local server).
    pub fn plain(url: impl Into<String>, client_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth: NatsAuth::None,
            ca_file: None,
            client_certificate: None,
            tls_required: false,
            client_name: client_name.into(),
            replicas: 1,
            patience: DEFAULT_PATIENCE,
            domain: None,
        }
    }

    async fn options(&self) -> Result<async_nats::ConnectOptions, BusError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(&self.client_name)
            .connection_timeout(Duration::from_secs(5));
        options = match &self.auth {
            NatsAuth::None => options,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => options.token(token.clone()),
            NatsAuth::NkeySeed(seed) => options.nkey(seed.clone()),
            NatsAuth::CredsFile(path) => {
                options
                    .credentials_file(path)
                    .await
                    .map_err(|e| BusError::Connect {
                        url: self.url.clone(),
                        detail: format!("cannot read credentials file {}: {e}", path.display()),
                    })?
            }
        };
        if let Some(ca_file) = &self.ca_file {
            options = options.add_root_certificates(ca_file.clone());
        }
        if let Some((cert, key)) = &self.client_certificate {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.require_tls(self.tls_required))
    }
}

/// Whether connecting failed in the TLS handshake (async-nats reports those as I/O errors).
fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let tls = cause.is::<rustls::Error>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>());
        if tls {
            return true;
        }
        source = cause.source();
    }
    false
}

/// JetStream bus of one job.
#[derive(Debug, Clone)]
pub struct NatsBus {
    names: Names,
    jetstream: jetstream::Context,
    /// Copies of each stream and of the KV bucket (`nats.replicas`).
    replicas: usize,
}

impl NatsBus {
    pub async fn connect(connect: &NatsConnect, names: Names) -> Result<Self, BusError> {
        let refused = |detail: String| BusError::Connect {
            url: connect.url.clone(),
            detail,
        };
        // `nats.url` may name several servers of a cluster: the client fails over between them.
        let servers = connect
            .url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| refused(format!("{url:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One attempt first: credentials or TLS the server refuses are an error now, with the
        // server's reason; a server that is not (yet) there is waited for below.
        let client = match connect.options().await?.connect(servers.as_slice()).await {
            Ok(client) => client,
            Err(error) => match error.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication => {
                    return Err(refused(format!(
                        "the server refuses the credentials ({error}): check nats.user/password, nats.token, nats.nkey_seed or nats.creds_file"
                    )));
                }
                async_nats::ConnectErrorKind::Tls => {
                    return Err(refused(format!(
                        "{error} (check nats.ca_file, nats.cert_file/key_file and the URL's host)"
                    )));
                }
                async_nats::ConnectErrorKind::ServerParse => {
                    return Err(refused(error.to_string()));
                }
                _ if is_tls_failure(&error) => {
                    return Err(refused(format!(
                        "TLS failed: {error} (check nats.ca_file, nats.cert_file/key_file, nats.tls_required and the URL's host)"
                    )));
                }
                _ => {
                    tracing::warn!(url = connect.url, %error, "NATS does not answer yet, retrying");
                    // Returns at once; the client connects in the background.
                    connect
                        .options()
                        .await?
                        .retry_on_initial_connect()
                        .connect(servers.as_slice())
                        .await
                        .map_err(|e| refused(e.to_string()))?
                }
            },
        };
        let jetstream = match &connect.domain {
            Some(domain) => jetstream::with_domain(client, domain),
            None => jetstream::new(client),
        };
        // A server that is restarting answers within a few seconds; give it `patience` (a
        // minute for a role), asking again every few seconds, before saying it is not there.
        let started = tokio::time::Instant::now();
        let give_up = started + connect.patience;
        loop {
            let ask = connect
                .patience
                .clamp(Duration::from_secs(1), Duration::from_secs(5));
            let detail = match tokio::time::timeout(ask, jetstream.query_account()).await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) => format!("JetStream is not available: {}", explain(&e.to_string())),
                Err(_) => "no answer from the server".to_owned(),
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(BusError::Connect {
                    url: connect.url.clone(),
                    detail: format!("{detail} (for {} s)", started.elapsed().as_secs()),
                });
            }
            tracing::warn!(
                url = connect.url,
                detail,
                "NATS does not answer yet, retrying"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(Self {
            names,
            jetstream,
            replicas: connect.replicas.max(1),
        })
    }

    /// Asks whoever answers on `subject` (one of them: a queue group), waiting `patience` for
    /// the reply; `Ok(None)` when nobody listens there now.
    pub async fn ask(
        &self,
        subject: String,
        question: Bytes,
        patience: Duration,
    ) -> Result<Option<Bytes>, BusError> {
        let client = self.jetstream.client();
        let nats_error = |detail: String| BusError::Nats {
            operation: "request",
            target: subject.clone(),
            detail,
        };
        let asked = client.send_request(
            subject.clone(),
            async_nats::Request::new()
                .payload(question)
                .timeout(Some(patience)),
        );
        match asked.await {
            Ok(reply) => Ok(Some(reply.payload)),
            Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => Ok(None),
            Err(error) => Err(nats_error(error.to_string())),
        }
    }

    /// Answers every request on `subject` with `answer(question)`, one listener of the queue
    /// group `group` getting each, until `shutdown`.
    pub async fn answer<F, Fut>(
        &self,
        subject: String,
        group: &str,
        answer: F,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), BusError>
    where
        F: Fn(Bytes) -> Fut,
        Fut: std::future::Future<Output = Bytes>,
    {
        let client = self.jetstream.client();
        let mut requests = client
            .queue_subscribe(subject.clone(), group.to_owned())
            .await
            .map_err(|e| BusError::Nats {
                operation: "subscribe",
                target: subject.clone(),
                detail: e.to_string(),
            })?;
        tokio::pin!(shutdown);
        loop {
            let request = tokio::select! {
                request = requests.next() => request,
                () = &mut shutdown => break,
            };
            let Some(request) = request else { break };
            let Some(reply) = request.reply else { continue };
            let answered = answer(request.payload).await;
            if let Err(error) = client.publish(reply, answered).await {
                tracing::warn!(%error, subject, "cannot answer a request");
            }
        }
        let _ = requests.unsubscribe().await;
        Ok(())
    }

    /// A message a stream holds now, for a person to look at (`influx2td inspect`); `None` when
    /// there is no such message (work-queue streams drop what was acknowledged).
    pub async fn stored_message(
        &self,
        kind: StreamKind,
        which: &WhichMessage,
    ) -> Result<Option<StoredMessage>, BusError> {
        let stream_name = self.names.stream(kind);
        let nats_error = |operation: &'static str, detail: String| BusError::Nats {
            operation,
            target: stream_name.clone(),
            detail,
        };
        let mut stream = match self.jetstream.get_stream(&stream_name).await {
            Ok(stream) => stream,
            Err(error) if error.to_string().contains("not found") => return Ok(None),
            Err(error) => return Err(nats_error("open stream", error.to_string())),
        };
        let found = match which {
            WhichMessage::Sequence(sequence) => stream
                .get_raw_message(*sequence)
                .await
                .map_err(|e| e.to_string()),
            WhichMessage::LastOnSubject(subject) => stream
                .get_last_raw_message_by_subject(subject)
                .await
                .map_err(|e| e.to_string()),
            WhichMessage::First => {
                let info = stream
                    .info()
                    .await
                    .map_err(|e| nats_error("read stream info", e.to_string()))?;
                if info.state.messages == 0 {
                    return Ok(None);
                }
                let first = info.state.first_sequence;
                stream
                    .get_raw_message(first)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let message = match found {
            Ok(message) => message,
            Err(detail) if detail.contains("not found") => return Ok(None),
            Err(detail) => return Err(nats_error("read a message", detail)),
        };
        let headers = message
            .headers
            .iter()
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| (name.to_string(), value.to_string()))
            })
            .collect();
        Ok(Some(StoredMessage {
            sequence: message.sequence,
            subject: message.subject.to_string(),
            headers,
            payload: message.payload,
        }))
    }

    /// A bus over an existing connection.
    pub fn from_client(client: async_nats::Client, names: Names) -> Self {
        Self {
            names,
            jetstream: jetstream::new(client),
            replicas: 1,
        }
    }
}

/// Where one stream of a job lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub stream: String,
    /// Its configured copies; `None` when the stream does not exist (yet).
    pub replicas: Option<usize>,
    /// The server leading it (`None` while it has no leader: a cluster without quorum).
    pub leader: Option<String>,
    /// Copies up to date now (the leader and the current followers).
    pub current: usize,
}

/// Which stored message to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhichMessage {
    /// The oldest the stream holds.
    First,
    Sequence(u64),
    /// The newest on this subject.
    LastOnSubject(String),
}

/// A message as a stream stores it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub sequence: u64,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl Bus for NatsBus {
    type Queue = NatsQueue;
    type Checkpoints = NatsCheckpoints;

    async fn ready(&self) -> Result<(), String> {
        match tokio::time::timeout(Duration::from_secs(3), self.jetstream.query_account()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("JetStream does not answer: {error}")),
            Err(_) => Err("NATS did not answer within 3s".to_owned()),
        }
    }

    fn names(&self) -> &Names {
        &self.names
    }

    async fn queue(&self, config: QueueConfig) -> Result<NatsQueue, BusError> {
        let stream_name = self.names.stream(config.kind);
        let nats_error = |operation: &'static str, detail: String| BusError::Nats {
            operation,
            target: stream_name.clone(),
            detail,
        };
        let stream = self
            .jetstream
            .get_or_create_stream(stream::Config {
                num_replicas: self.replicas,
                name: stream_name.clone(),
                subjects: vec![self.names.subject_filter(config.kind)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::New,
                max_messages: saturating_i64(config.max_messages),
                max_bytes: saturating_i64(config.max_bytes),
                duplicate_window: config.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                nats_error(
                    "create stream",
                    refused(&e, Some(config.max_bytes), self.replicas),
                )
            })?;
        self.keep_replicas(&stream).await?;
        let consumer_name = config.kind.consumer();
        let consumer_config = consumer::pull::Config {
            durable_name: Some(consumer_name.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_ack_pending: saturating_i64(config.max_ack_pending),
            max_deliver: -1,
            ..Default::default()
        };
        let mut consumer: consumer::Consumer<consumer::pull::Config> = stream
            .get_or_create_consumer(consumer_name, consumer_config.clone())
            .await
            .map_err(|e| nats_error("create consumer", e.to_string()))?;
        // A consumer created earlier (another role, an earlier run with other settings) keeps
        // its own ack_wait unless told: a dead reader's windows would wait for the old value.
        let existing = &consumer.cached_info().config;
        if existing.ack_wait != config.ack_wait
            || existing.max_ack_pending != consumer_config.max_ack_pending
        {
            consumer = stream
                .update_consumer(consumer_config)
                .await
                .map_err(|e| nats_error("update consumer", e.to_string()))?;
        }
        Ok(NatsQueue {
            stream_name,
            ack_wait: config.ack_wait,
            jetstream: self.jetstream.clone(),
            consumer,
        })
    }

    async fn checkpoints(&self) -> Result<NatsCheckpoints, BusError> {
        let description = format!("influx2td checkpoints of job {}", self.names.job());
        self.key_value(&self.names.kv_bucket(), &description).await
    }
}

impl NatsBus {
    /// Deletes the job's streams and its KV bucket: its windows, rows, reports, dead letters,
    /// checkpoints and lease. Streams already gone are no error.
    pub async fn delete_job(&self) -> Result<(), BusError> {
        let streams = self.job_streams();
        for stream in streams {
            match self.jetstream.delete_stream(&stream).await {
                Ok(_) => {}
                Err(error)
                    if matches!(error.kind(), jetstream::context::DeleteStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {}
                Err(error) => {
                    return Err(BusError::Nats {
                        operation: "delete stream",
                        target: stream,
                        detail: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The names of every stream of the job: its queues and the stream behind its KV bucket.
    fn job_streams(&self) -> impl Iterator<Item = String> + '_ {
        StreamKind::ALL
            .iter()
            .map(|kind| self.names.stream(*kind))
            .chain([format!("KV_{}", self.names.kv_bucket())])
    }

    /// Gives an existing stream (created by an earlier run with another `nats.replicas`) the
    /// replica count this bus is configured with; JetStream moves the data to the new peers.
    async fn keep_replicas(&self, stream: &stream::Stream) -> Result<(), BusError> {
        let mut config = stream.cached_info().config.clone();
        if config.num_replicas.max(1) == self.replicas {
            return Ok(());
        }
        let name = config.name.clone();
        let was = config.num_replicas.max(1);
        config.num_replicas = self.replicas;
        match self.jetstream.update_stream(&config).await {
            Ok(_) => {
                tracing::info!(
                    stream = name,
                    from = was,
                    to = self.replicas,
                    "changed the stream's replicas to nats.replicas"
                );
                Ok(())
            }
            Err(error) => Err(BusError::Nats {
                operation: "change the replicas of stream",
                target: name.clone(),
                detail: format!(
                    "it has {was}, nats.replicas asks for {}: {}; set nats.replicas back to \
                     {was}, or, when the job is done or stopped, delete its streams (`nats \
                     stream rm {name}`) so that they are made anew",
                    self.replicas,
                    refused(&error, None, self.replicas),
                ),
            }),
        }
    }

    /// Where each stream of the job lives: its replica count and the server leading it
    /// (`None` for a stream not created yet).
    pub async fn placement(&self) -> Result<Vec<Placement>, BusError> {
        let streams = self.job_streams();
        let mut placements = Vec::new();
        for name in streams {
            let info = match self.jetstream.get_stream(&name).await {
                Ok(mut stream) => Some(
                    stream
                        .info()
                        .await
                        .map_err(|e| BusError::Nats {
                            operation: "read stream info",
                            target: name.clone(),
                            detail: e.to_string(),
                        })?
                        .clone(),
                ),
                Err(error) if error.to_string().contains("not found") => None,
                Err(error) => {
                    return Err(BusError::Nats {
                        operation: "open stream",
                        target: name,
                        detail: error.to_string(),
                    });
                }
            };
            placements.push(Placement {
                replicas: info.as_ref().map(|i| i.config.num_replicas.max(1)),
                leader: info
                    .as_ref()
                    .and_then(|i| i.cluster.as_ref())
                    .and_then(|c| c.leader.clone()),
                current: info.as_ref().map_or(0, |i| {
                    1 + i
                        .cluster
                        .as_ref()
                        .map_or(0, |c| c.replicas.iter().filter(|p| p.current).count())
                }),
                stream: name,
            });
        }
        Ok(placements)
    }

    /// The KV bucket `bucket` of this connection, created (file storage) when missing.
    pub async fn key_value(
        &self,
        bucket: &str,
        description: &str,
    ) -> Result<NatsCheckpoints, BusError> {
        let store = match self.jetstream.get_key_value(bucket).await {
            Ok(store) => {
                let stream = self
                    .jetstream
                    .get_stream(format!("KV_{bucket}"))
                    .await
                    .map_err(|e| BusError::Nats {
                        operation: "open KV bucket",
                        target: bucket.to_owned(),
                        detail: e.to_string(),
                    })?;
                self.keep_replicas(&stream).await?;
                store
            }
            Err(_) => self
                .jetstream
                .create_key_value(kv::Config {
                    bucket: bucket.to_owned(),
                    description: description.to_owned(),
                    history: 5,
                    num_replicas: self.replicas,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| BusError::Nats {
                    operation: "create KV bucket",
                    target: bucket.to_owned(),
                    detail: refused(&e, None, self.replicas),
                })?,
        };
        Ok(NatsCheckpoints {
            bucket: bucket.to_owned(),
            store,
        })
    }
}

/// Why JetStream refused to create a stream (`max_bytes` of it) or a key-value bucket (`None`),
/// with what to do when it lacks storage: it reserves each stream's whole `max_bytes` up front
/// from `max_file_store` (by default 75% of the disk free under its store directory when it
/// started) and creates nothing more once the reservations take it all.
fn refused(
    error: &(dyn std::error::Error + 'static),
    max_bytes: Option<u64>,
    replicas: usize,
) -> String {
    let mut cause = Some(error);
    let mut code = None;
    while let Some(current) = cause {
        if let Some(created) = current.downcast_ref::<CreateStreamError>()
            && let CreateStreamErrorKind::JetStream(e) = created.kind()
        {
            code = Some(e.error_code());
        }
        cause = current.source();
    }
    if replicas > 1 {
        match code {
            Some(ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED) => {
                return format!(
                    "{error}: nats.replicas = {replicas}, but this NATS server is not part of a \
                     cluster and keeps one copy only; set nats.replicas = 1, or point nats.url \
                     at a cluster of at least {replicas} JetStream servers"
                );
            }
            Some(ErrorCode::CLUSTER_NO_PEERS | ErrorCode::INSUFFICIENT_RESOURCES) => {
                return format!(
                    "{error}: nats.replicas = {replicas}, but the NATS cluster has fewer than \
                     {replicas} JetStream servers up (or they lack storage); set nats.replicas \
                     to at most the number of servers, or start the missing ones"
                );
            }
            _ => {}
        }
    }
    if code != Some(ErrorCode::STORAGE_RESOURCES_EXCEEDED) {
        return error.to_string();
    }
    let what = match max_bytes {
        Some(bytes) => format!("reserve the {} MiB this stream holds", bytes >> 20),
        None => "create a key-value bucket".to_owned(),
    };
    format!(
        "{error}: nats-server cannot {what} (a job's streams take {} MiB in all); its \
         JetStream file storage is full or smaller than that. Give it more: set jetstream \
         {{ max_file_store }} in its configuration, or free disk under its store directory and \
         restart it (by default it takes 75% of the disk free at start-up); or delete the \
         streams of jobs that are done (`nats stream rm`; a job's are named PREFIX_JOB_WORK, \
         _DATA, _DONE and _DEAD)",
        crate::JOB_STREAM_BYTES >> 20,
    )
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A JetStream stream and its durable pull consumer.
#[derive(Debug, Clone)]
pub struct NatsQueue {
    stream_name: String,
    ack_wait: Duration,
    jetstream: jetstream::Context,
    consumer: consumer::Consumer<consumer::pull::Config>,
}

impl WorkQueue for NatsQueue {
    type Delivery = NatsDelivery;

    async fn try_publish(&self, message: OutgoingMessage) -> Result<Published, BusError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            influx2td_proto::names::header::MSG_ID,
            message.msg_id.as_str(),
        );
        for (name, value) in &message.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        let publish_error = |error: jetstream::context::PublishError| {
            if error.kind() == jetstream::context::PublishErrorKind::MaxPayloadExceeded {
                return BusError::TooLarge {
                    subject: message.subject.clone(),
                    detail: error.to_string(),
                };
            }
            let store_full = std::error::Error::source(&error)
                .and_then(|source| source.downcast_ref::<jetstream::Error>())
                .is_some_and(|js| js.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED);
            if store_full {
                return BusError::Full {
                    queue: self.stream_name.clone(),
                    detail: error.to_string(),
                };
            }
            BusError::Nats {
                operation: "publish",
                target: message.subject.clone(),
                detail: error.to_string(),
            }
        };
        let ack = self
            .jetstream
            .publish_with_headers(message.subject.clone(), headers, message.payload.to_bytes())
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(if ack.duplicate {
            Published::Duplicate
        } else {
            Published::Stored
        })
    }

    async fn depth(&self) -> Result<QueueDepth, BusError> {
        let mut consumer = self.consumer.clone();
        let info = consumer.info().await.map_err(|e| BusError::Nats {
            operation: "consumer info",
            target: self.stream_name.clone(),
            detail: e.to_string(),
        })?;
        // With WorkQueue retention the stream holds exactly the messages not yet acknowledged.
        Ok(QueueDepth {
            messages: info.num_pending + info.num_ack_pending as u64,
            unsettled: info.num_ack_pending as u64,
        })
    }

    async fn pull(&self, max: usize, wait: Duration) -> Result<Vec<NatsDelivery>, BusError> {
        let pull_error = |detail: String| BusError::Nats {
            operation: "pull",
            target: self.stream_name.clone(),
            detail,
        };
        // A pull request held open past ack_wait (the server holds it at max_ack_pending) would
        // get its own messages again; keep every request well inside ack_wait.
        let request_limit = (self.ack_wait / 4).max(Duration::from_millis(10));
        let mut deliveries: Vec<NatsDelivery> = Vec::new();
        let mut seen = HashSet::new();
        // Any message seen twice in one pull (a redelivery racing the request) is kept once.
        let mut keep = |message: Result<jetstream::Message, async_nats::Error>,
                        deliveries: &mut Vec<NatsDelivery>|
         -> Result<(), BusError> {
            let delivery = NatsDelivery::new(message.map_err(|e| pull_error(e.to_string()))?);
            if seen.insert(delivery.stream_sequence) {
                deliveries.push(delivery);
            }
            Ok(())
        };
        // Take what is there without waiting (a no-wait request ends at once, so nothing can
        // be delivered to it later); only when nothing is, wait for one message, then take
        // what came with it the same way. A waiting request for more than one message must not
        // be used: dropped after its first message, it would go on receiving until it expires,
        // and what it received would sit unacknowledged until ack_wait.
        let fetch = |max: usize| {
            self.consumer
                .fetch()
                .max_messages(max)
                .expires(request_limit.min(Duration::from_millis(200)))
                .messages()
        };
        let mut batch = fetch(max).await.map_err(|e| pull_error(e.to_string()))?;
        while let Some(message) = batch.next().await {
            keep(message, &mut deliveries)?;
        }
        if !deliveries.is_empty() || wait.is_zero() {
            return Ok(deliveries);
        }
        let give_up = tokio::time::Instant::now() + wait;
        while deliveries.is_empty() {
            let remaining = give_up.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            let mut waiting = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(remaining.min(request_limit).max(Duration::from_millis(10)))
                .messages()
                .await
                .map_err(|e| pull_error(e.to_string()))?;
            while let Some(message) = waiting.next().await {
                keep(message, &mut deliveries)?;
            }
        }
        if !deliveries.is_empty() && max > 1 {
            let mut batch = fetch(max - 1)
                .await
                .map_err(|e| pull_error(e.to_string()))?;
            while let Some(message) = batch.next().await {
                keep(message, &mut deliveries)?;
            }
        }
        Ok(deliveries)
    }
}

/// A message delivered by JetStream.
#[derive(Debug)]
pub struct NatsDelivery {
    message: jetstream::Message,
    delivered: u64,
    stream_sequence: u64,
}

impl NatsDelivery {
    fn new(message: jetstream::Message) -> Self {
        let (delivered, stream_sequence) = message
            .info()
            .map(|info| {
                (
                    u64::try_from(info.delivered).unwrap_or(1),
                    info.stream_sequence,
                )
            })
            .unwrap_or((1, 0));
        Self {
            message,
            delivered,
            stream_sequence,
        }
    }

    fn ack_error(&self, error: async_nats::Error) -> BusError {
        BusError::Nats {
            operation: "acknowledge",
            target: self.message.subject.to_string(),
            detail: error.to_string(),
        }
    }
}

impl Delivery for NatsDelivery {
    fn subject(&self) -> &str {
        self.message.subject.as_str()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.message
            .headers
            .as_ref()?
            .get(name)
            .map(|value| value.as_str())
    }

    fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    async fn in_progress(&self) -> Result<(), BusError> {
        self.message
            .ack_with(jetstream::AckKind::Progress)
            .await
            .map_err(|e| self.ack_error(e))
    }

    async fn settle(self, settle: Settle) -> Result<(), BusError> {
        let kind = match settle {
            Settle::Ack => jetstream::AckKind::Ack,
            Settle::Nak { delay } => jetstream::AckKind::Nak(Some(delay)),
            Settle::Terminate { .. } => jetstream::AckKind::Term,
        };
        // Waits for the server to confirm, so an ack lost on the way is an error, not a silence.
        self.message
            .double_ack_with(kind)
            .await
            .map_err(|e| self.ack_error(e))
    }
}

/// Checkpoints (or any other keys) in a JetStream KV bucket.
#[derive(Debug, Clone)]
pub struct NatsCheckpoints {
    bucket: String,
    store: kv::Store,
}

impl NatsCheckpoints {
    /// Sets `key` whatever it held.
    pub async fn put(&self, key: &str, value: String) -> Result<u64, BusError> {
        self.store
            .put(key, value.into())
            .await
            .map_err(|e| self.error("write", key, e.to_string()))
    }

    /// Deletes `key` (no error when it is not there).
    pub async fn delete(&self, key: &str) -> Result<(), BusError> {
        self.store
            .purge(key)
            .await
            .map_err(|e| self.error("delete", key, e.to_string()))
    }

    fn error(&self, operation: &'static str, key: &str, detail: String) -> BusError {
        BusError::Nats {
            operation,
            target: format!("{}/{key}", self.bucket),
            detail,
        }
    }
}

impl CheckpointStore for NatsCheckpoints {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, BusError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| self.error("read checkpoint", key, e.to_string()))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value = String::from_utf8(entry.value.to_vec())
            .map_err(|e| self.error("read checkpoint", key, format!("value is not UTF-8: {e}")))?;
        Ok(Some(Versioned {
            value,
            revision: entry.revision,
        }))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: String,
        expected: Option<u64>,
    ) -> Result<u64, BusError> {
        let conflict = |found: Option<u64>| BusError::Conflict {
            key: key.to_owned(),
            expected,
            found,
        };
        let result = match expected {
            None => self.store.create(key, value.into()).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    None
                } else {
                    Some(e.to_string())
                }
            }),
            Some(revision) => self
                .store
                .update(key, value.into(), revision)
                .await
                .map_err(|e| {
                    if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                        None
                    } else {
                        Some(e.to_string())
                    }
                }),
        };
        match result {
            Ok(revision) => Ok(revision),
            Err(Some(detail)) => Err(self.error("write checkpoint", key, detail)),
            Err(None) => {
                let found = self.get(key).await?.map(|versioned| versioned.revision);
                Err(conflict(found))
            }
        }
    }

    async fn keys(&self) -> Result<Vec<String>, BusError> {
        let mut keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| self.error("list checkpoints", "*", e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| self.error("list checkpoints", "*", e.to_string()))?;
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn a_lost_quorum_is_named_as_such_and_other_errors_are_left_alone() {
        for detail in [
            "JetStream error: JetStream system temporarily unavailable (code 503, error code 10008)",
            "error while processing messages from the stream: 503, None",
            "unable to get message: 503 no responders",
            "no stream found for given subject",
        ] {
            let explained = explain(detail);
            assert!(explained.starts_with(detail), "{explained}");
            assert!(explained.contains("no quorum"), "{explained}");
        }
        let timed_out = explain("timed out");
        assert!(timed_out.contains("did not answer in time"), "{timed_out}");
        assert!(timed_out.contains("no quorum"), "{timed_out}");
        assert_eq!(explain("stream not found"), "stream not found");
    }
}
