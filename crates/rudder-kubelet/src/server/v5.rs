//! kubectl's remotecommand `v5.channel.k8s.io` over WebSocket, translated to SPDY/3.1
//! `v4.channel.k8s.io` towards containerd's streaming server, which refuses v5. Upstream's
//! API server does the same translation (StreamTranslatorProxy); here the kubelet does it, so
//! the API server keeps splicing upgrades unchanged. v5 is v4 plus the close signal (channel
//! 255), which becomes a SPDY FIN on the stdin stream — the half-close WebSocket lacks.
//!
//! No maintained Rust crate speaks SPDY/3.1, so the few frames needed are written here. The
//! kubelet is always the SPDY client: it opens every stream, so it never has to inflate a
//! header block (containerd's SYN_REPLYs are skipped), and it compresses its own header
//! blocks without the SPDY dictionary, which Go's zlib reader accepts (FDICT unset).

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

pub(super) const V5: &str = "v5.channel.k8s.io";
pub(super) const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;

/// Which streams the request asked for (upstream's remotecommand Options).
#[derive(Debug, Clone, Copy)]
pub(super) struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// SPDY stream ids of the streams opened, indexed by v5 channel.
#[derive(Debug, Default, PartialEq, Clone, Copy)]
struct Ids([Option<u32>; 5]);

impl Ids {
    fn assign(s: Streams) -> Ids {
        // The error stream first, as client-go's v4 protocol creates it.
        let wanted = [
            (ERROR, true),
            (STDIN, s.stdin),
            (STDOUT, s.stdout),
            // With a TTY stderr is merged into stdout (upstream drops it).
            (STDERR, s.stderr && !s.tty),
            (RESIZE, s.tty),
        ];
        let mut ids = Ids::default();
        let mut next = 1;
        for (ch, on) in wanted {
            if on {
                ids.0[ch as usize] = Some(next);
                next += 2;
            }
        }
        ids
    }

    fn channel_of(&self, stream: u32) -> Option<u8> {
        (0u8..5).find(|&ch| self.0[ch as usize] == Some(stream))
    }

    fn stream_of(&self, ch: u8) -> Option<u32> {
        self.0.get(ch as usize).copied().flatten()
    }
}

fn stream_type(ch: u8) -> &'static str {
    match ch {
        STDIN => "stdin",
        STDOUT => "stdout",
        STDERR => "stderr",
        RESIZE => "resize",
        _ => "error",
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

fn data(stream: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.push(if fin { FLAG_FIN } else { 0 });
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// SYN_STREAM frames share one zlib stream per connection, flushed at each frame's end.
struct HeaderWriter(flate2::Compress);

impl HeaderWriter {
    fn new() -> HeaderWriter {
        HeaderWriter(flate2::Compress::new(flate2::Compression::default(), true))
    }

    fn syn_stream(&mut self, stream: u32, headers: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            for s in [k, v] {
                block.extend_from_slice(&(s.len() as u32).to_be_bytes());
                block.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = &block[..];
        loop {
            let before = self.0.total_in();
            self.0
                .compress_vec(input, &mut out, flate2::FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            input = &input[(self.0.total_in() - before) as usize..];
            // A sync flush is complete once the input is consumed with room to spare.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(64);
        }
        let mut payload = Vec::with_capacity(10 + out.len());
        payload.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes()); // associated stream
        payload.extend_from_slice(&[0, 0]); // priority, slot
        payload.extend_from_slice(&out);
        Ok(control(SYN_STREAM, 0, &payload))
    }
}

/// A close frame with status 1000: client-go's WebSocket readers turn only that into EOF on
/// every channel; a close without a status is an error to them.
pub(super) fn normal_closure() -> Message {
    Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }))
}

#[derive(Debug, PartialEq)]
enum Frame {
    Data {
        stream: u32,
        fin: bool,
        payload: Vec<u8>,
    },
    Ping(Vec<u8>),
    GoAway,
    Other,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    if head[0] & 0x80 == 0 {
        return Ok(Frame::Data {
            stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]),
            fin: head[4] & FLAG_FIN != 0,
            payload,
        });
    }
    Ok(match u16::from_be_bytes([head[2], head[3]]) {
        PING => Frame::Ping(payload),
        GOAWAY => Frame::GoAway,
        _ => Frame::Other,
    })
}

/// Carries one v5 WebSocket session over a fresh SPDY v4 connection until the runtime
/// reports the result on the error stream (or either side goes away).
pub(super) async fn translate<W, R>(ws: tokio_tungstenite::WebSocketStream<W>, spdy: R, s: Streams)
where
    W: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + AsyncWrite + Unpin,
{
    let ids = Ids::assign(s);
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut spdy_rx, mut spdy_tx) = tokio::io::split(spdy);
    let mut headers = HeaderWriter::new();
    for ch in [ERROR, STDIN, STDOUT, STDERR, RESIZE] {
        let Some(id) = ids.stream_of(ch) else {
            continue;
        };
        let frame = match headers.syn_stream(id, &[("streamtype", stream_type(ch))]) {
            Ok(f) => f,
            Err(_) => return,
        };
        if spdy_tx.write_all(&frame).await.is_err() {
            return;
        }
    }
    // Frames towards the runtime come from both directions (client input, ping replies).
    let (to_runtime, mut queued) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let writer = async move {
        while let Some(frame) = queued.recv().await {
            if spdy_tx.write_all(&frame).await.is_err() {
                break;
            }
        }
    };
    let pings = to_runtime.clone();
    let client = async move {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let frame = match msg {
                Message::Binary(b) => match b.split_first() {
                    Some((&CLOSE, rest)) => rest
                        .first()
                        .and_then(|&ch| ids.stream_of(ch))
                        .map(|id| data(id, true, &[])),
                    Some((&ch, rest)) if ch == STDIN || ch == RESIZE => {
                        ids.stream_of(ch).map(|id| data(id, false, rest))
                    }
                    _ => None,
                },
                Message::Close(_) => break,
                _ => None,
            };
            if let Some(f) = frame {
                if to_runtime.send(f).await.is_err() {
                    break;
                }
            }
        }
    };
    let runtime = async move {
        loop {
            match read_frame(&mut spdy_rx).await {
                Ok(Frame::Data {
                    stream,
                    fin,
                    payload,
                }) => {
                    let Some(ch) = ids.channel_of(stream) else {
                        continue;
                    };
                    if !payload.is_empty() {
                        let mut msg = Vec::with_capacity(1 + payload.len());
                        msg.push(ch);
                        msg.extend_from_slice(&payload);
                        if ws_tx.send(Message::Binary(msg.into())).await.is_err() {
                            return;
                        }
                    }
                    // The status comes after the command ended and its output was copied.
                    if ch == ERROR && fin {
                        break;
                    }
                }
                Ok(Frame::Ping(p)) => {
                    if pings.send(control(PING, 0, &p)).await.is_err() {
                        break;
                    }
                }
                Ok(Frame::Other) => {}
                Ok(Frame::GoAway) | Err(_) => break,
            }
        }
        let _ = ws_tx.send(normal_closure()).await;
    };
    tokio::select! {
        _ = runtime => {}
        _ = async { tokio::join!(client, writer) } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn stream_ids_follow_client_go_order() {
        let ids = Ids::assign(Streams {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        });
        assert_eq!(ids.0, [Some(3), Some(5), Some(7), Some(1), None]);
        let tty = Ids::assign(Streams {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: true,
        });
        assert_eq!(tty.0, [Some(3), Some(5), None, Some(1), Some(7)]);
        assert_eq!(tty.channel_of(7), Some(RESIZE));
    }

    #[test]
    fn header_blocks_inflate_to_spdy_name_value_pairs() {
        let mut w = HeaderWriter::new();
        let mut compressed = Vec::new();
        for (id, t) in [(1, "error"), (3, "stdout")] {
            let f = w.syn_stream(id, &[("streamtype", t)]).unwrap();
            assert_eq!(&f[..4], &[0x80, 3, 0, 1], "SYN_STREAM, version 3");
            let len = u32::from_be_bytes([0, f[5], f[6], f[7]]) as usize;
            assert_eq!(f.len(), 8 + len);
            assert_eq!(u32::from_be_bytes([f[8], f[9], f[10], f[11]]), id);
            compressed.extend_from_slice(&f[18..]);
        }
        // One zlib stream across frames, as Go's framer reads it.
        let mut plain = Vec::new();
        let _ = flate2::read::ZlibDecoder::new(&compressed[..]).read_to_end(&mut plain);
        let pair = |t: &str| {
            let mut b = 1u32.to_be_bytes().to_vec();
            b.extend_from_slice(&10u32.to_be_bytes());
            b.extend_from_slice(b"streamtype");
            b.extend_from_slice(&(t.len() as u32).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b
        };
        assert_eq!(plain, [pair("error"), pair("stdout")].concat());
    }

    #[tokio::test]
    async fn a_v5_session_maps_onto_spdy_streams() {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, Role};
        use tokio_tungstenite::WebSocketStream;

        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let (spdy_ours, mut runtime) = tokio::io::duplex(1 << 16);
        let streams = Streams {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: false,
        };
        let session = tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
            translate(ws, spdy_ours, streams).await;
        });
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        // error, stdin, stdout: three SYN_STREAMs before anything else.
        for _ in 0..3 {
            assert_eq!(read_frame(&mut runtime).await.unwrap(), Frame::Other);
        }
        // Stdin data, then v5's close signal for stdin: the SPDY half-close v4 lacks over
        // WebSocket.
        for (msg, fin, payload) in [
            (vec![STDIN, b'h', b'i'], false, b"hi".to_vec()),
            (vec![CLOSE, STDIN], true, vec![]),
        ] {
            client.send(Message::Binary(msg.into())).await.unwrap();
            assert_eq!(
                read_frame(&mut runtime).await.unwrap(),
                Frame::Data {
                    stream: 3,
                    fin,
                    payload
                }
            );
        }
        let status = br#"{"metadata":{},"status":"Success"}"#;
        runtime.write_all(&data(5, false, b"out")).await.unwrap();
        runtime.write_all(&data(1, true, status)).await.unwrap();
        let next = |m: Option<Result<Message, _>>| m.and_then(Result::ok);
        assert_eq!(
            next(client.next().await),
            Some(Message::Binary(b"\x01out".to_vec().into()))
        );
        assert_eq!(
            next(client.next().await),
            Some(Message::Binary([&[ERROR][..], status].concat().into()))
        );
        match next(client.next().await) {
            Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Normal),
            other => panic!("expected a normal close, got {other:?}"),
        }
        session.await.unwrap();
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let bytes = [data(5, true, b"hi"), control(PING, 0, &[0, 0, 0, 2])].concat();
        let mut r = &bytes[..];
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Frame::Data {
                stream: 5,
                fin: true,
                payload: b"hi".to_vec()
            }
        );
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Frame::Ping(vec![0, 0, 0, 2])
        );
    }
}
