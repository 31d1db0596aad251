//! A browser reduced to what the tests need, in-process (the router called
//! directly) or over real TCP to a listening server.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

use super::{Phone, Server, between};

/// One answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A browser reduced to what the tests need: one session cookie, the last
/// CSRF token seen, and a client address.
pub struct Agent<'a> {
    pub server: &'a Server,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub address: SocketAddr,
    pub cookies_seen: Vec<String>,
    /// The trusted-browser cookie, `name=value`, while the server keeps it set.
    pub trusted: Option<String>,
    /// Whether the last answer was a redirect, so the token may have changed.
    pub csrf_stale: bool,
    /// The session cookie's name (`__Host-` prefixed on a server with `Secure` cookies).
    pub session_name: String,
    /// The CSRF cookie a visitor without a session gets, `name=value`.
    pub csrf_cookie: Option<String>,
    /// Where the last redirect pointed, to be followed before the next post.
    pub last_location: Option<String>,
    /// Over real TCP: the server's address and a client bound to `address`'s IP.
    pub tcp: Option<(SocketAddr, Client<HttpConnector, Body>)>,
}

impl<'a> Agent<'a> {
    pub fn new(server: &'a Server) -> Self {
        Self::from(server, [127, 0, 0, 1])
    }

    pub fn from(server: &'a Server, ip: [u8; 4]) -> Self {
        Agent {
            server,
            cookie: None,
            csrf: None,
            address: SocketAddr::from((ip, 40_000)),
            cookies_seen: Vec::new(),
            trusted: None,
            csrf_stale: false,
            last_location: None,
            session_name: "acme_session".to_owned(),
            csrf_cookie: None,
            tcp: None,
        }
    }

    /// An agent at `ip` talking over real TCP to the server listening at `base`.
    pub fn over_tcp(server: &'a Server, base: SocketAddr, ip: [u8; 4]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(std::net::IpAddr::from(ip)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Agent {
            tcp: Some((base, client)),
            ..Self::from(server, ip)
        }
    }

    pub async fn send(&mut self, mut request: Request<Body>) -> Reply {
        request.extensions_mut().insert(ConnectInfo(self.address));
        let cookies: Vec<String> = self
            .cookie
            .iter()
            .map(|c| format!("{}={c}", self.session_name))
            .chain(self.trusted.clone())
            .chain(self.csrf_cookie.clone())
            .collect();
        if !cookies.is_empty() {
            request
                .headers_mut()
                .insert(header::COOKIE, cookies.join("; ").parse().unwrap());
        }
        let response = match &self.tcp {
            Some((base, client)) => {
                let (mut parts, body) = request.into_parts();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://{base}{path}").parse().unwrap();
                parts.extensions = Default::default();
                let response = client.request(Request::from_parts(parts, body)).await.unwrap();
                response.map(Body::new)
            }
            None => self.server.router.clone().oneshot(request).await.unwrap(),
        };
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            if set.contains("acme_csrf=") {
                self.csrf_cookie = (!set.contains("Max-Age=0")).then(|| set.split(';').next().unwrap().to_owned());
                self.cookies_seen.push(set);
                continue;
            }
            if set.contains("acme_trusted_") {
                let pair = set.split(';').next().unwrap().to_owned();
                self.trusted = (!set.contains("Max-Age=0")).then_some(pair);
                self.cookies_seen.push(set);
                continue;
            }
            if let Some((name, _)) = set.split_once('=').filter(|(name, _)| name.ends_with("acme_session")) {
                self.session_name = name.to_owned();
            }
            let value = between(&set, "acme_session=", ";").unwrap_or_default().to_owned();
            self.cookie = (!value.is_empty() && !set.contains("Max-Age=0")).then(|| value.clone());
            self.cookies_seen.push(set);
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        self.csrf_stale = status.is_redirection();
        self.last_location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(token) = between(&body, "name=\"csrf\" value=\"", "\"") {
            self.csrf = Some(token.to_owned());
        }
        Reply { status, headers, body }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    /// Posts `fields` with the session's CSRF token. After a redirect the
    /// token is fetched again, as a browser reads it from the next page: the
    /// portal issues a new one at every change of privilege.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        if let Some(location) = self.last_location.take().filter(|_| self.csrf_stale) {
            self.get(&location).await;
        }
        if self.csrf.is_none() {
            self.get("/").await;
        }
        if self.csrf.is_none() {
            // A visitor without a session: the sign-in form's token.
            self.get("/customer/sign-in").await;
        }
        let mut all = vec![("csrf", self.csrf.clone().unwrap())];
        all.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        self.post_raw(path, serde_urlencoded::to_string(&all).unwrap()).await
    }

    pub async fn post_raw(&mut self, path: &str, body: String) -> Reply {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// The password step.
    pub async fn password(&mut self, email: &str) -> Reply {
        let (area, password) = self.server.account(email);
        let path = format!("/{}/sign-in", area.segment());
        self.get(&path).await;
        self.post(&path, &[("email", email), ("password", &password)]).await
    }

    /// Sets up an authenticator on the sign-in's enrolment page; answers the
    /// phone and the backup codes, leaving the codes page on screen.
    pub async fn enrol_at_sign_in(&mut self, area: &str) -> (Phone, Vec<String>) {
        assert_eq!(self.get(&format!("/{area}/sign-in/enrol")).await.status, StatusCode::OK);
        let qr = self
            .post(&format!("/{area}/sign-in/enrol"), &[("label", "Test phone")])
            .await;
        assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
        let mut phone = Phone::typed(between(&qr.body, "id=\"secret-key\">", "<").expect("the key is shown"));
        let code = phone.code(&self.server.clock);
        let codes = self
            .post(&format!("/{area}/sign-in/enrol/confirm"), &[("code", &code)])
            .await;
        assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
        (phone, backup_codes(&codes.body))
    }

    /// A whole first sign-in with enrolment, ending signed in.
    pub async fn enrol_and_sign_in(&mut self, email: &str) -> (Phone, Vec<String>) {
        let area = self.server.account(email).0.segment();
        let reply = self.password(email).await;
        assert_eq!(reply.location(), format!("/{area}/sign-in/enrol"));
        let enrolled = self.enrol_at_sign_in(area).await;
        let done = self.post(&format!("/{area}/sign-in/finish"), &[("saved", "yes")]).await;
        assert_eq!(done.location(), format!("/{area}/account"));
        enrolled
    }

    /// A sign-in with a code, ending signed in.
    pub async fn sign_in_with(&mut self, email: &str, phone: &mut Phone) {
        let area = self.server.account(email).0.segment();
        let reply = self.password(email).await;
        assert_eq!(reply.location(), format!("/{area}/sign-in/code"), "{}", reply.body);
        let code = phone.code(&self.server.clock);
        let reply = self.post(&format!("/{area}/sign-in/code"), &[("code", &code)]).await;
        assert_eq!(reply.location(), format!("/{area}/account"), "{}", reply.body);
    }
}

pub fn backup_codes(html: &str) -> Vec<String> {
    let list = between(html, "id=\"backup-codes\">", "</ul>").expect("the backup codes are shown");
    list.split("<li>")
        .filter_map(|item| item.split("</li>").next())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}
