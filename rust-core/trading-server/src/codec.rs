//! The protobuf codec of the generated services: prost's, except that bytes which are not a
//! valid message of the expected type (a truncated field, a known field with the wrong wire
//! type ...) are refused as `INVALID_ARGUMENT` `the request is not a valid trading.v1.<Name>`
//! (`docs/GRPC.md`, "Errors"). prost's own status is `INTERNAL` with the library's text: the
//! client's mistake would read as the server's, and the text is not the Python engine's.

use std::marker::PhantomData;

use prost::{Message, Name};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstDecoder, ProstEncoder};

/// prost's codec with the decoding refusal above (set with `codec_path` in `build.rs`).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstDecoder::default())
    }
}

/// prost's decoder with the refusal of undecodable bytes as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Name + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|_| not_valid::<U>())
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The refusal of bytes that are not a `U`. The same codec decodes the answers in the generated
/// client, where the bytes are a response.
pub fn not_valid<U: Name>() -> Status {
    let name = U::full_name();
    let what = if U::NAME.ends_with("Response") {
        "response"
    } else {
        "request"
    };
    Status::invalid_argument(format!("the {what} is not a valid {name}"))
}
