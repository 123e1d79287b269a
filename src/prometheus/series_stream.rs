//! Prometheus' JSON envelope around a list of label sets, decoded one label
//! set at a time (serde's seeds carry the receiver into the list), for
//! [`super::Client::series_each`].

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Labels;

pub struct Envelope<'a, E> {
    pub each: &'a mut dyn FnMut(Labels) -> Result<(), E>,
    /// Set when `each` failed; the decoder then fails too, to stop.
    pub stopped: &'a mut Option<E>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Status,
    Data,
    Error,
    #[serde(other)]
    Other,
}

impl<'de, E> DeserializeSeed<'de> for Envelope<'_, E> {
    /// `status` and `error`.
    type Value = (String, Option<String>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, E> Visitor<'de> for Envelope<'_, E> {
    type Value = (String, Option<String>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Prometheus' API envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut status = None;
        let mut error = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Status => status = Some(map.next_value::<String>()?),
                Field::Error => error = map.next_value::<Option<String>>()?,
                Field::Data => map.next_value_seed(Data {
                    each: &mut *self.each,
                    stopped: &mut *self.stopped,
                })?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let status = status.ok_or_else(|| de::Error::missing_field("status"))?;
        Ok((status, error))
    }
}

struct Data<'a, E> {
    each: &'a mut dyn FnMut(Labels) -> Result<(), E>,
    stopped: &'a mut Option<E>,
}

impl<'de, E> DeserializeSeed<'de> for Data<'_, E> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E> Visitor<'de> for Data<'_, E> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of label sets")
    }

    /// `"data": null`, as for any empty answer.
    fn visit_unit<Er: de::Error>(self) -> Result<(), Er> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(labels) = seq.next_element::<Labels>()? {
            if let Err(e) = (self.each)(labels) {
                *self.stopped = Some(e);
                return Err(de::Error::custom("stopped by the receiver"));
            }
        }
        Ok(())
    }
}
