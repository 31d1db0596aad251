//! QR codes of enrolment URIs, for a web page (SVG) or a terminal (Unicode blocks).
//!
//! The image encodes the secret: treat it like the secret itself (serve it
//! with `Cache-Control: no-store`, never log it).

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};
use zeroize::Zeroizing;

use super::uri::OtpAuthUri;
use crate::error::{Error, Result};

impl OtpAuthUri {
    fn qr(&self) -> Result<QrCode> {
        // Medium error correction survives a smudged or glaring screen and keeps the code small.
        QrCode::with_error_correction_level(self.to_uri().as_bytes(), EcLevel::M).map_err(|_| Error::QrTooLong)
    }

    /// The enrolment QR code as a standalone SVG document (at least 200 × 200 px).
    pub fn qr_svg(&self) -> Result<Zeroizing<String>> {
        let code = self.qr()?;
        Ok(Zeroizing::new(
            code.render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build(),
        ))
    }

    /// The enrolment QR code drawn with Unicode half blocks, two rows per line,
    /// light-on-dark as terminals show it best; scannable from most terminals.
    pub fn qr_terminal(&self) -> Result<Zeroizing<String>> {
        let code = self.qr()?;
        Ok(Zeroizing::new(
            code.render::<unicode::Dense1x2>()
                .dark_color(unicode::Dense1x2::Light)
                .light_color(unicode::Dense1x2::Dark)
                .build(),
        ))
    }
}
