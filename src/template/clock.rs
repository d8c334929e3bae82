//! `strftime_now` pinned to one instant. transformers gives templates
//! `strftime_now(fmt) = datetime.now().strftime(fmt)` (Llama 3.x and gpt-oss print
//! today's date); a gate must render the same bytes every day, so the clock is fixed at
//! [`PINNED`] and formatted with the C-locale directives Python's `strftime` passes to
//! glibc. A template that *branches* on the date is caught by the static rules whatever
//! the pinned day is.

/// The instant every render sees: 2026-01-15 (a Thursday), 09:30:00.
pub const PINNED: Instant = Instant {
    year: 2026,
    month: 1,
    day: 15,
    hour: 9,
    minute: 30,
    second: 0,
};

/// A civil date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl Instant {
    fn leap(&self) -> bool {
        (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0
    }

    /// Day of the year, 1-based.
    fn yday(&self) -> u32 {
        let lengths = [
            31,
            if self.leap() { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
        ];
        lengths.iter().take(self.month as usize - 1).sum::<u32>() + self.day
    }

    /// 0 = Monday.
    fn weekday(&self) -> usize {
        // Sakamoto's method (0 = Sunday), shifted to Monday first.
        let t = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
        let y = if self.month < 3 {
            self.year - 1
        } else {
            self.year
        };
        let sunday0 = (y + y / 4 - y / 100 + y / 400 + t[self.month as usize - 1] + self.day as i32)
            .rem_euclid(7) as usize;
        (sunday0 + 6) % 7
    }

    /// `strftime(fmt)` in the C locale. Unknown directives are copied as they are (glibc
    /// does the same); the output is at most a few times the format's length.
    pub fn strftime(&self, fmt: &str) -> String {
        let mut out = String::with_capacity(fmt.len() * 2);
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            // glibc's `-` flag drops the padding (`%-d` -> `5`).
            let unpadded = chars.peek() == Some(&'-');
            if unpadded {
                chars.next();
            }
            let num = |n: u32, width: usize| {
                if unpadded {
                    n.to_string()
                } else {
                    format!("{n:0width$}")
                }
            };
            let month = MONTHS[self.month as usize - 1];
            let day = DAYS[self.weekday()];
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            };
            match chars.next() {
                Some('Y') => out.push_str(&self.year.to_string()),
                Some('y') => out.push_str(&num(self.year.rem_euclid(100) as u32, 2)),
                Some('m') => out.push_str(&num(self.month, 2)),
                Some('d') => out.push_str(&num(self.day, 2)),
                Some('e') => out.push_str(&format!("{:>2}", self.day)),
                Some('j') => out.push_str(&num(self.yday(), 3)),
                Some('H') => out.push_str(&num(self.hour, 2)),
                Some('I') => out.push_str(&num(hour12, 2)),
                Some('M') => out.push_str(&num(self.minute, 2)),
                Some('S') => out.push_str(&num(self.second, 2)),
                Some('p') => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                Some('B') => out.push_str(month),
                Some('b') | Some('h') => out.push_str(&month[..3]),
                Some('A') => out.push_str(day),
                Some('a') => out.push_str(&day[..3]),
                Some('u') => out.push_str(&(self.weekday() + 1).to_string()),
                Some('w') => out.push_str(&((self.weekday() + 1) % 7).to_string()),
                Some('F') => {
                    out.push_str(&format!("{}-{:02}-{:02}", self.year, self.month, self.day))
                }
                Some('D') => out.push_str(&format!(
                    "{:02}/{:02}/{:02}",
                    self.month,
                    self.day,
                    self.year.rem_euclid(100)
                )),
                Some('T') => out.push_str(&format!(
                    "{:02}:{:02}:{:02}",
                    self.hour, self.minute, self.second
                )),
                Some('R') => out.push_str(&format!("{:02}:{:02}", self.hour, self.minute)),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    if unpadded {
                        out.push('-');
                    }
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        assert_eq!(PINNED.strftime("%d %b %Y"), "15 Jan 2026");
        assert_eq!(PINNED.strftime("%Y-%m-%d"), "2026-01-15");
        assert_eq!(
            PINNED.strftime("%A, %B %-d, %Y"),
            "Thursday, January 15, 2026"
        );
        assert_eq!(PINNED.strftime("%H:%M %p %j %q"), "09:30 AM 015 %q");
    }
}
