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

impl Present for i32 {
    fn present(&self) -> bool {
        *self != 0
    }
}

/// A buy/sell point (买卖点), with what it was derived from. Written out (not by [`message!`]):
/// its optional fields (explicit presence: sent when set, whatever the value) come between
/// plain ones, and every field goes in tag order, as the Python engine's protobuf writes it.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct Signal {
    pub r#type: u32,
    /// A `trading.v1.Side`.
    pub side: i32,
    pub pen: u32,
    pub point: Option<Point>,
    pub r#final: bool,
    pub pivot: u32,
    pub zd: f64,
    pub zg: f64,
    pub entering_strength: Option<f64>,
    pub leaving_strength: Option<f64>,
    pub ratio: Option<f64>,
    pub follows: Option<u32>,
    /// A `trading.v1.PivotEdge`.
    pub edge: i32,
}

impl prost::Message for Signal {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        let plain = |tag, x: &u32, buf: &mut _| {
            if x.present() {
                encoding::uint32::encode(tag, x, buf);
            }
        };
        plain(1, &self.r#type, buf);
        if self.side.present() {
            encoding::int32::encode(2, &self.side, buf);
        }
        plain(3, &self.pen, buf);
        if let Some(m) = &self.point {
            encoding::message::encode(4, m, buf);
        }
        if self.r#final.present() {
            encoding::bool::encode(5, &self.r#final, buf);
        }
        plain(6, &self.pivot, buf);
        for (tag, x) in [(7, &self.zd), (8, &self.zg)] {
            if x.present() {
                encoding::double::encode(tag, x, buf);
            }
        }
        let optional = [
            (9, &self.entering_strength),
            (10, &self.leaving_strength),
            (11, &self.ratio),
        ];
        for (tag, x) in optional {
            if let Some(x) = x {
                encoding::double::encode(tag, x, buf);
            }
        }
        if let Some(x) = &self.follows {
            encoding::uint32::encode(12, x, buf);
        }
        if self.edge.present() {
            encoding::int32::encode(13, &self.edge, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::uint32::merge(wire_type, &mut self.r#type, buf, ctx),
            2 => encoding::int32::merge(wire_type, &mut self.side, buf, ctx),
            3 => encoding::uint32::merge(wire_type, &mut self.pen, buf, ctx),
            4 => encoding::message::merge(
                wire_type,
                self.point.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            5 => encoding::bool::merge(wire_type, &mut self.r#final, buf, ctx),
            6 => encoding::uint32::merge(wire_type, &mut self.pivot, buf, ctx),
            7 => encoding::double::merge(wire_type, &mut self.zd, buf, ctx),
            8 => encoding::double::merge(wire_type, &mut self.zg, buf, ctx),
            9 => encoding::double::merge(
                wire_type,
                self.entering_strength.get_or_insert(0.0),
                buf,
                ctx,
            ),
            10 => encoding::double::merge(
                wire_type,
                self.leaving_strength.get_or_insert(0.0),
                buf,
                ctx,
            ),
            11 => encoding::double::merge(wire_type, self.ratio.get_or_insert(0.0), buf, ctx),
            12 => encoding::uint32::merge(wire_type, self.follows.get_or_insert(0), buf, ctx),
            13 => encoding::int32::merge(wire_type, &mut self.edge, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let plain = |tag, x: &u32| {
            if x.present() {
                encoding::uint32::encoded_len(tag, x)
            } else {
                0
            }
        };
        let enumeration = |tag, x: &i32| {
            if x.present() {
                encoding::int32::encoded_len(tag, x)
            } else {
                0
            }
        };
        let double = |tag, x: &f64| {
            if x.present() {
                encoding::double::encoded_len(tag, x)
            } else {
                0
            }
        };
        let optional = |tag, x: &Option<f64>| {
            x.as_ref()
                .map_or(0, |x| encoding::double::encoded_len(tag, x))
        };
        plain(1, &self.r#type)
            + enumeration(2, &self.side)
            + plain(3, &self.pen)
            + self
                .point
                .as_ref()
                .map_or(0, |m| encoding::message::encoded_len(4, m))
            + if self.r#final.present() {
                encoding::bool::encoded_len(5, &self.r#final)
            } else {
                0
            }
            + plain(6, &self.pivot)
            + double(7, &self.zd)
            + double(8, &self.zg)
            + optional(9, &self.entering_strength)
            + optional(10, &self.leaving_strength)
            + optional(11, &self.ratio)
            + self
                .follows
                .as_ref()
                .map_or(0, |x| encoding::uint32::encoded_len(12, x))
            + enumeration(13, &self.edge)
    }

    fn clear(&mut self) {
        *self = Self::default();
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
