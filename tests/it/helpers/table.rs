//! Table-driven API checks: a list of requests, each with the answer it must get, run
//! in order against one service ([`TestApp::check`]). A wrong answer fails naming its
//! row, the request and what came back.

use reqwest::Method;
use serde_json::Value;

use super::{Resp, TestApp};

/// One row of a table: a request and the answer it must get.
pub struct Call {
    method: Method,
    user: Option<String>,
    path: String,
    body: Option<Value>,
    status: u16,
    answer: Option<Value>,
}

/// `GET path` as `user` (`None`: without a token), expected to answer 200.
pub fn get_as(user: Option<&str>, path: impl Into<String>) -> Call {
    Call {
        method: Method::GET,
        user: user.map(str::to_owned),
        path: path.into(),
        body: None,
        status: 200,
        answer: None,
    }
}

/// `method path` without a body as `user`, expected to answer 200.
pub fn request(method: Method, user: &str, path: impl Into<String>) -> Call {
    Call {
        method,
        ..get(user, path)
    }
}

/// `GET path` as `user`, expected to answer 200.
pub fn get(user: &str, path: impl Into<String>) -> Call {
    get_as(Some(user), path)
}

/// `POST path` with a JSON `body` as `user`, expected to answer 200.
pub fn post(user: &str, path: impl Into<String>, body: Value) -> Call {
    Call {
        method: Method::POST,
        body: Some(body),
        ..get(user, path)
    }
}

/// `DELETE path` as `user`, expected to answer 204.
pub fn delete(user: &str, path: impl Into<String>) -> Call {
    Call {
        method: Method::DELETE,
        status: 204,
        ..get(user, path)
    }
}

impl Call {
    /// Expects this status (any body).
    pub fn is(self, status: u16) -> Call {
        Call { status, ..self }
    }

    /// Expects this status and exactly this JSON body.
    pub fn answers(self, status: u16, body: Value) -> Call {
        Call {
            status,
            answer: Some(body),
            ..self
        }
    }
}

impl TestApp {
    /// Runs `calls` in order and checks each answer; returns the responses.
    pub async fn check(&self, calls: impl IntoIterator<Item = Call>) -> Vec<Resp> {
        let mut out = Vec::new();
        for (row, c) in calls.into_iter().enumerate() {
            let r = self
                .req(c.method.clone(), c.user.as_deref(), &c.path, c.body)
                .await;
            let who = c.user.as_deref().unwrap_or("anonymous");
            assert_eq!(
                r.status, c.status,
                "row {row}: {} {} as {who} answered {}",
                c.method, c.path, r.text
            );
            if let Some(answer) = c.answer {
                assert_eq!(
                    r.body, answer,
                    "row {row}: {} {} as {who}",
                    c.method, c.path
                );
            }
            out.push(r);
        }
        out
    }
}
