//! A fake provider on 127.0.0.1: real sockets, real HTTP/1.1 (keep-alive,
//! Content-Length bodies). It records every request and answers from a
//! script, for the providers' transport tests.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as form pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// An answer to script.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
    /// Claim this many more body bytes than are sent, then stall for
    /// `delay` (a body that stops arriving after the status).
    pub short_by: usize,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Self {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
            short_by: 0,
        }
    }

    /// The status and part of the body, then nothing for `stall`.
    pub fn stalling(status: u16, partial: &str, stall: Duration) -> Self {
        Answer {
            short_by: 100,
            delay: stall,
            ..Answer::json(status, partial)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    script: VecDeque<Answer>,
}

/// The server: answers scripted answers in order, then `fallback`.
#[derive(Clone)]
pub struct FakeServer {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    fallback: Answer,
}

impl FakeServer {
    pub fn start(fallback: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = FakeServer {
            base_url,
            state: Arc::default(),
            fallback,
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let s = s.clone();
                std::thread::spawn(move || s.serve(stream));
            }
        });
        server
    }

    /// Answers the next request with `answer`.
    pub fn then(&self, answer: Answer) {
        self.state.lock().unwrap().script.push_back(answer);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let answer = {
                let mut st = self.state.lock().unwrap();
                st.seen.push(Seen {
                    method,
                    path,
                    headers,
                    body,
                });
                st.script
                    .pop_front()
                    .unwrap_or_else(|| self.fallback.clone())
            };
            if answer.short_by == 0 {
                std::thread::sleep(answer.delay);
            }
            let mut text = format!(
                "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
                answer.status,
                answer.body.len() + answer.short_by
            );
            for (k, v) in &answer.headers {
                text.push_str(&format!("{k}: {v}\r\n"));
            }
            text.push_str("\r\n");
            text.push_str(&answer.body);
            if out.write_all(text.as_bytes()).is_err() {
                return;
            }
            if answer.short_by > 0 {
                let _ = out.flush();
                std::thread::sleep(answer.delay);
                return;
            }
        }
    }
}
