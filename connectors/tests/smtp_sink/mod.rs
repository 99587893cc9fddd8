//! A scripted SMTP server for tests, over real TCP on 127.0.0.1: it speaks enough SMTP for
//! lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and answers each message's end of data
//! as its script says: accept, a transient 451, a permanent 550, or a dropped connection.
//! A script entry applies to the next message for its recipient (`*` for any recipient).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Accept,
    Transient,
    Permanent,
    /// Close the connection after receiving the data, without replying.
    Drop,
    /// Accept, after holding the reply back for two seconds.
    Slow,
}

#[derive(Debug, Default)]
pub struct State {
    pub script: VecDeque<(String, Reply)>,
    /// Raw messages accepted (with a 250).
    pub accepted: Vec<String>,
    /// Every message received, whatever the reply.
    pub received: usize,
    /// How long each message's reply is held back (none by default).
    pub hold: std::time::Duration,
    /// Messages whose reply is being held now, and the most held at once: how many
    /// deliveries were in flight together.
    pub held: usize,
    pub most_held: usize,
}

pub struct Sink {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Starts a server on `addr` (port 0 for any); replies follow `script`, then accept.
    pub async fn start(addr: &str, script: &[(&str, Reply)]) -> Sink {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = script
            .iter()
            .map(|(r, reply)| ((*r).to_owned(), *reply))
            .collect();
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = session(stream, s).await;
                });
            }
        });
        Sink { addr, state, task }
    }

    pub fn accepted(&self) -> Vec<String> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Stops listening (the port refuses connections until a new sink binds it).
    pub fn stop(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut rcpt = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("RCPT") {
            rcpt.push(line.split(['<', '>']).nth(1).unwrap_or("").to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
            rcpt.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
                data.push_str("\r\n");
            }
            let reply = {
                let mut s = state.lock().unwrap();
                s.received += 1;
                let pos = s
                    .script
                    .iter()
                    .position(|(who, _)| who == "*" || rcpt.contains(who));
                let r = pos
                    .and_then(|i| s.script.remove(i))
                    .map_or(Reply::Accept, |(_, r)| r);
                if matches!(r, Reply::Accept | Reply::Slow) {
                    s.accepted.push(data);
                }
                r
            };
            let hold = {
                let mut s = state.lock().unwrap();
                s.held += 1;
                s.most_held = s.most_held.max(s.held);
                s.hold
            };
            let hold = if reply == Reply::Slow {
                std::time::Duration::from_secs(2)
            } else {
                hold
            };
            tokio::time::sleep(hold).await;
            state.lock().unwrap().held -= 1;
            match reply {
                Reply::Accept | Reply::Slow => b"250 queued\r\n",
                Reply::Transient => b"451 try again later\r\n",
                Reply::Permanent => b"550 no such mailbox\r\n",
                Reply::Drop => return Ok(()),
            }
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
