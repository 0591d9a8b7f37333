//! The messages of `proto/trading.proto` with plain (implicit-presence) `double` fields,
//! written by hand so that `-0.0` is sent. prost's generated code skips a proto3 scalar equal
//! to its default, and `-0.0 == 0.0`: a negative zero (a MACD histogram at
//! `macd.histogram_scale = 5e-324`, a repaired or a `-0.0` price) would reach the client as
//! `+0.0`, unlike the same value in a packed list (`Macd.histogram`) or from the Python engine,
//! whose protobuf skips only a zero bit pattern. Here a double is skipped only when its bits are
//! all zero. Each type replaces the generated one (`extern_path` in `build.rs`); the wire format
//! is the proto's, field for field.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::DecodeError;

/// One field of a message, encoded under its tag: a plain (implicit-presence) scalar is sent
/// when it is not its default (by bit pattern for doubles), an optional scalar (explicit
/// presence) and a message field when set.
trait Field: Default {
    fn encode(&self, tag: u32, buf: &mut impl BufMut);
    fn merge(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError>;
    fn encoded_len(&self, tag: u32) -> usize;
}

/// Plain and optional scalars of one Rust type, with its prost encoding module and what
/// "default" means for it.
macro_rules! scalar {
    ($ty:ty, $kind:ident, $present:expr) => {
        impl Field for $ty {
            fn encode(&self, tag: u32, buf: &mut impl BufMut) {
                if $present(self) {
                    encoding::$kind::encode(tag, self, buf);
                }
            }
            fn merge(
                &mut self,
                wire_type: WireType,
                buf: &mut impl Buf,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                encoding::$kind::merge(wire_type, self, buf, ctx)
            }
            fn encoded_len(&self, tag: u32) -> usize {
                if $present(self) {
                    encoding::$kind::encoded_len(tag, self)
                } else {
                    0
                }
            }
        }

        optional!($ty, $kind);
    };
}

/// An optional field of type `$ty` with the prost encoding module `$kind` (an optional scalar
/// with explicit presence, or a message field): sent when set.
macro_rules! optional {
    ($ty:ty, $kind:ident) => {
        impl Field for Option<$ty> {
            fn encode(&self, tag: u32, buf: &mut impl BufMut) {
                if let Some(x) = self {
                    encoding::$kind::encode(tag, x, buf);
                }
            }
            fn merge(
                &mut self,
                wire_type: WireType,
                buf: &mut impl Buf,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                encoding::$kind::merge(
                    wire_type,
                    self.get_or_insert_with(Default::default),
                    buf,
                    ctx,
                )
            }
            fn encoded_len(&self, tag: u32) -> usize {
                self.as_ref()
                    .map_or(0, |x| encoding::$kind::encoded_len(tag, x))
            }
        }
    };
}

scalar!(f64, double, |x: &f64| x.to_bits() != 0);
scalar!(u32, uint32, |x: &u32| *x != 0);
scalar!(i32, int32, |x: &i32| *x != 0);
scalar!(i64, int64, |x: &i64| *x != 0);
scalar!(bool, bool, |x: &bool| *x);

/// A message type: its fields in tag order, each a [`Field`] (a plain or optional scalar, or
/// an optional message), written in that order as the Python engine's protobuf writes them.
macro_rules! message {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$fdoc:meta])* $tag:literal $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Debug, Default)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl prost::Message for $name {
            fn encode_raw(&self, buf: &mut impl BufMut) {
                $( Field::encode(&self.$field, $tag, buf); )*
            }

            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: WireType,
                buf: &mut impl Buf,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                match tag {
                    $( $tag => Field::merge(&mut self.$field, wire_type, buf, ctx), )*
                    _ => encoding::skip_field(wire_type, tag, buf, ctx),
                }
            }

            fn encoded_len(&self) -> usize {
                0 $( + Field::encoded_len(&self.$field, $tag) )*
            }

            fn clear(&mut self) {
                *self = Self::default();
            }
        }
    };
}

message! {
    /// One bar of a stream message (time: epoch milliseconds, UTC).
    Bar {
        1 time: i64,
        2 open: f64,
        3 high: f64,
        4 low: f64,
        5 close: f64,
        6 volume: f64,
    }
}

message! {
    /// A chart point: raw bar index, its time and the price.
    Point {
        1 index: u32,
        2 time: i64,
        3 price: f64,
    }
}

optional!(Point, message);

message! {
    /// A pivot (中枢).
    Pivot {
        1 segment: u32,
        2 first_pen: u32,
        3 last_pen: u32,
        4 zd: f64,
        5 zg: f64,
        6 dd: f64,
        7 gg: f64,
        8 start: Option<Point>,
        9 end: Option<Point>,
        10 confirmed: bool,
    }
}

message! {
    /// A bar repaired under `validation.repair`.
    Repair {
        1 index: u32,
        2 old_high: f64,
        3 old_low: f64,
        4 new_high: f64,
        5 new_low: f64,
    }
}

message! {
    /// MACD of one bar (NaN when absent).
    MacdPoint {
        1 dif: f64,
        2 dea: f64,
        3 histogram: f64,
    }
}

message! {
    /// A buy/sell point (买卖点), with what it was derived from: optional fields (explicit
    /// presence: sent when set, whatever the value) among plain ones.
    Signal {
        1 r#type: u32,
        /// A `trading.v1.Side`.
        2 side: i32,
        3 pen: u32,
        4 point: Option<Point>,
        5 r#final: bool,
        6 pivot: u32,
        7 zd: f64,
        8 zg: f64,
        9 entering_strength: Option<f64>,
        10 leaving_strength: Option<f64>,
        11 ratio: Option<f64>,
        12 follows: Option<u32>,
        /// A `trading.v1.PivotEdge`.
        13 edge: i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The generated encoding of the same fields, for comparison: prost's derive.
    #[derive(Clone, PartialEq, prost::Message)]
    struct DerivedPivot {
        #[prost(uint32, tag = "1")]
        segment: u32,
        #[prost(uint32, tag = "2")]
        first_pen: u32,
        #[prost(uint32, tag = "3")]
        last_pen: u32,
        #[prost(double, tag = "4")]
        zd: f64,
        #[prost(double, tag = "5")]
        zg: f64,
        #[prost(double, tag = "6")]
        dd: f64,
        #[prost(double, tag = "7")]
        gg: f64,
        #[prost(message, optional, tag = "8")]
        start: Option<Point>,
        #[prost(message, optional, tag = "9")]
        end: Option<Point>,
        #[prost(bool, tag = "10")]
        confirmed: bool,
    }

    /// The generated encoding of `Signal`'s fields, for comparison.
    #[derive(Clone, PartialEq, prost::Message)]
    struct DerivedSignal {
        #[prost(uint32, tag = "1")]
        r#type: u32,
        #[prost(int32, tag = "2")]
        side: i32,
        #[prost(uint32, tag = "3")]
        pen: u32,
        #[prost(message, optional, tag = "4")]
        point: Option<Point>,
        #[prost(bool, tag = "5")]
        r#final: bool,
        #[prost(uint32, tag = "6")]
        pivot: u32,
        #[prost(double, tag = "7")]
        zd: f64,
        #[prost(double, tag = "8")]
        zg: f64,
        #[prost(double, optional, tag = "9")]
        entering_strength: Option<f64>,
        #[prost(double, optional, tag = "10")]
        leaving_strength: Option<f64>,
        #[prost(double, optional, tag = "11")]
        ratio: Option<f64>,
        #[prost(uint32, optional, tag = "12")]
        follows: Option<u32>,
        #[prost(int32, tag = "13")]
        edge: i32,
    }

    /// A signal is prost's encoding field for field, but for a plain `-0.0` edge, which is sent;
    /// an optional strength set to 0 is sent too (explicit presence).
    #[test]
    fn signal_is_prost_encoding_and_sends_negative_zero() {
        let point = Some(Point {
            index: 4,
            time: 9,
            price: 1.0,
        });
        let cases = [
            Signal {
                r#type: 1,
                side: 2,
                pen: 4,
                point,
                r#final: true,
                pivot: 0,
                zd: 18.0,
                zg: 20.0,
                entering_strength: Some(f64::NAN),
                leaving_strength: Some(0.0),
                ratio: Some(0.25),
                follows: None,
                edge: 0,
            },
            Signal {
                r#type: 2,
                pen: 6,
                pivot: 3,
                follows: Some(0),
                ..Signal::default()
            },
            Signal {
                r#type: 3,
                side: 1,
                zd: 1.5,
                edge: 2,
                ..Signal::default()
            },
        ];
        for g in cases {
            let d = DerivedSignal {
                r#type: g.r#type,
                side: g.side,
                pen: g.pen,
                point: g.point,
                r#final: g.r#final,
                pivot: g.pivot,
                zd: g.zd,
                zg: g.zg,
                entering_strength: g.entering_strength,
                leaving_strength: g.leaving_strength,
                ratio: g.ratio,
                follows: g.follows,
                edge: g.edge,
            };
            assert_eq!(g.encode_to_vec(), d.encode_to_vec());
            assert_eq!(g.encoded_len(), g.encode_to_vec().len());
            let back = Signal::decode(&*d.encode_to_vec()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{g:?}"));
        }
        let z = Signal {
            zd: -0.0,
            ..Signal::default()
        };
        let back = Signal::decode(&*z.encode_to_vec()).unwrap();
        assert_eq!(back.zd.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn negative_zero_is_sent_and_the_rest_is_prost_encoding() {
        let p = Point {
            index: 3,
            time: -5,
            price: -0.0,
        };
        let back = Point::decode(&*p.encode_to_vec()).unwrap();
        assert_eq!(back.price.to_bits(), (-0.0f64).to_bits());
        assert_eq!(Point::default().encode_to_vec(), Vec::<u8>::new());
        let z = Pivot {
            segment: 1,
            first_pen: 0,
            last_pen: 7,
            zd: 1.5,
            zg: 0.0,
            dd: -2.0,
            gg: f64::NAN,
            start: Some(Point {
                index: 0,
                time: 1,
                price: 2.0,
            }),
            end: None,
            confirmed: true,
        };
        let d = DerivedPivot {
            segment: 1,
            first_pen: 0,
            last_pen: 7,
            zd: 1.5,
            zg: 0.0,
            dd: -2.0,
            gg: f64::NAN,
            start: z.start,
            end: None,
            confirmed: true,
        };
        assert_eq!(z.encode_to_vec(), d.encode_to_vec());
        assert_eq!(z.encoded_len(), z.encode_to_vec().len());
        let back = Pivot::decode(&*d.encode_to_vec()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{z:?}"));
    }
}
