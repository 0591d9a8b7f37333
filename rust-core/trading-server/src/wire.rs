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

/// Whether a field is sent: not its default, by bit pattern for doubles.
trait Present {
    fn present(&self) -> bool;
}

impl Present for f64 {
    fn present(&self) -> bool {
        self.to_bits() != 0
    }
}

impl Present for u32 {
    fn present(&self) -> bool {
        *self != 0
    }
}

impl Present for i64 {
    fn present(&self) -> bool {
        *self != 0
    }
}

impl Present for bool {
    fn present(&self) -> bool {
        *self
    }
}

/// A message type with scalar fields (`kind` is the prost encoding module: `double`,
/// `uint32`, ...) and optional message fields, in tag order.
macro_rules! message {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $tag:literal $field:ident: $ty:ty = $kind:ident, )*
        }
        $( messages { $( $mtag:literal $mfield:ident: $mty:ty, )* } )?
        $( tail { $( $ttag:literal $tfield:ident: $tty:ty = $tkind:ident, )* } )?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Debug, Default)]
        pub struct $name {
            $( pub $field: $ty, )*
            $( $( pub $mfield: Option<$mty>, )* )?
            $( $( pub $tfield: $tty, )* )?
        }

        impl prost::Message for $name {
            fn encode_raw(&self, buf: &mut impl BufMut) {
                $( if self.$field.present() { encoding::$kind::encode($tag, &self.$field, buf); } )*
                $( $( if let Some(m) = &self.$mfield { encoding::message::encode($mtag, m, buf); } )* )?
                $( $( if self.$tfield.present() { encoding::$tkind::encode($ttag, &self.$tfield, buf); } )* )?
            }

            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: WireType,
                buf: &mut impl Buf,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                match tag {
                    $( $tag => encoding::$kind::merge(wire_type, &mut self.$field, buf, ctx), )*
                    $( $( $mtag => encoding::message::merge(
                        wire_type,
                        self.$mfield.get_or_insert_with(Default::default),
                        buf,
                        ctx,
                    ), )* )?
                    $( $( $ttag => encoding::$tkind::merge(wire_type, &mut self.$tfield, buf, ctx), )* )?
                    _ => encoding::skip_field(wire_type, tag, buf, ctx),
                }
            }

            fn encoded_len(&self) -> usize {
                0 $( + if self.$field.present() { encoding::$kind::encoded_len($tag, &self.$field) } else { 0 } )*
                $( $( + self.$mfield.as_ref().map_or(0, |m| encoding::message::encoded_len($mtag, m)) )* )?
                $( $( + if self.$tfield.present() { encoding::$tkind::encoded_len($ttag, &self.$tfield) } else { 0 } )* )?
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
        1 time: i64 = int64,
        2 open: f64 = double,
        3 high: f64 = double,
        4 low: f64 = double,
        5 close: f64 = double,
        6 volume: f64 = double,
    }
}

message! {
    /// A chart point: raw bar index, its time and the price.
    Point {
        1 index: u32 = uint32,
        2 time: i64 = int64,
        3 price: f64 = double,
    }
}

message! {
    /// A pivot (中枢).
    Pivot {
        1 segment: u32 = uint32,
        2 first_pen: u32 = uint32,
        3 last_pen: u32 = uint32,
        4 zd: f64 = double,
        5 zg: f64 = double,
        6 dd: f64 = double,
        7 gg: f64 = double,
    }
    messages {
        8 start: Point,
        9 end: Point,
    }
    tail {
        10 confirmed: bool = bool,
    }
}

message! {
    /// A bar repaired under `validation.repair`.
    Repair {
        1 index: u32 = uint32,
        2 old_high: f64 = double,
        3 old_low: f64 = double,
        4 new_high: f64 = double,
        5 new_low: f64 = double,
    }
}

message! {
    /// MACD of one bar (NaN when absent).
    MacdPoint {
        1 dif: f64 = double,
        2 dea: f64 = double,
        3 histogram: f64 = double,
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
