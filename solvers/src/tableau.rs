//! Explicit Runge–Kutta methods as data.
//!
//! A method is a [`ButcherTableau`] constant; one generic stepper drives every tableau.
//! Coefficients are stored in `f64` at full precision and converted once to the solve's
//! scalar type.

use crate::backend::Terms;
use crate::scalar::Real;

/// A continuous extension ("dense output") of an explicit Runge–Kutta method.
///
/// Between `t_n` and `t_n + h`, with `θ = (t - t_n) / h`, the interpolant is
/// `x(t) = x_n + h Σ_i b_i(θ) k_i` where `b_i(θ) = Σ_{p=1..degree} coeffs[i][p-1] θ^p`.
#[derive(Debug, Clone, Copy)]
pub struct DenseOutput {
    /// Degree of the polynomials `b_i(θ)`.
    pub degree: usize,
    /// Row-major `stages x degree`: coefficient of `θ^p` (p = 1..=degree) for stage `i`.
    pub coeffs: &'static [f64],
    /// Order of the interpolant (local error `O(h^(order+1))`).
    pub order: u32,
}

impl DenseOutput {
    /// `b_i(θ)` for stage `i`.
    pub fn weight(&self, i: usize, theta: f64) -> f64 {
        let row = &self.coeffs[i * self.degree..(i + 1) * self.degree];
        // Horner on θ (b_i(θ) = θ (c1 + θ (c2 + ...))).
        let mut acc = 0.0;
        for c in row.iter().rev() {
            acc = acc * theta + c;
        }
        acc * theta
    }
}

/// The coefficients of an explicit Runge–Kutta method (a Butcher tableau).
///
/// `a` is the full `stages x stages` matrix, row-major and strictly lower triangular; `b`
/// the solution weights; `c` the nodes. `b_error = b - b̂` (solution minus embedded
/// weights), so that `h Σ b_error_i k_i` is the local error estimate. `order` is the order of
/// the solution, `error_order` the order of the embedded method (absent for methods without
/// one, which then run only with fixed steps).
#[derive(Debug, Clone, Copy)]
pub struct ButcherTableau {
    /// Short name used in messages ("Tsit5", "Euler").
    pub name: &'static str,
    /// Number of stages `s`.
    pub stages: usize,
    /// Row-major `s x s`, strictly lower triangular.
    pub a: &'static [f64],
    /// Solution weights, length `s`.
    pub b: &'static [f64],
    /// Nodes, length `s`.
    pub c: &'static [f64],
    /// Error weights `b - b̂`, length `s`; `None` for methods without an embedded pair.
    pub b_error: Option<&'static [f64]>,
    /// Order of the solution.
    pub order: u32,
    /// Order of the embedded method, when there is one.
    pub error_order: Option<u32>,
    /// First Same As Last: the last stage is evaluated at `(t + h, x_{n+1})`, so it is the
    /// next step's first stage.
    pub fsal: bool,
    /// Continuous extension for dense output.
    pub dense: Option<DenseOutput>,
}

impl ButcherTableau {
    /// `a[i][j]`.
    #[inline]
    pub fn a(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.stages + j]
    }

    /// Embedded weights `b̂ = b - b_error`, when the method has them.
    pub fn b_embedded(&self) -> Option<Vec<f64>> {
        self.b_error
            .map(|e| self.b.iter().zip(e).map(|(b, e)| b - e).collect())
    }

    /// The combination of stage `i`'s state, `X_i = x + h Σ_{j<i} a_ij k_j`, as terms
    /// `(j, a_ij)` in `T` (zero weights left out): what every backend runs
    /// ([`Backend::combine_columns`](crate::Backend::combine_columns)).
    ///
    /// # Panics
    /// If `i` is not a stage.
    pub fn stage_terms<T: Real>(&self, i: usize) -> Terms<T> {
        assert!(i < self.stages, "stage {i} of {}", self.stages);
        let mut w = [T::zero(); crate::backend::MAX_TERMS];
        for (j, wj) in w.iter_mut().enumerate().take(i) {
            *wj = T::from_f64(self.a(i, j));
        }
        Terms::nonzero(&w[..i])
    }

    /// The solution's combination `x + h Σ_j b_j k_j` as terms `(j, b_j)` in `T` (zero
    /// weights left out).
    pub fn solution_terms<T: Real>(&self) -> Terms<T> {
        let mut w = [T::zero(); crate::backend::MAX_TERMS];
        for (wj, &b) in w.iter_mut().zip(self.b) {
            *wj = T::from_f64(b);
        }
        Terms::nonzero(&w[..self.stages])
    }

    /// The error estimate's combination `Σ_j e_j k_j` as terms `(j, e_j)` in `T`, every
    /// stage, zero weights included (a NaN in any stage must reach the norm;
    /// [`Backend::error_norms`](crate::Backend::error_norms)); `None` without an embedded
    /// pair.
    pub fn error_terms<T: Real>(&self) -> Option<Terms<T>> {
        self.b_error
            .map(|e| Terms::from_pairs(e.iter().map(|&v| T::from_f64(v)).enumerate()))
    }

    /// Whether the method has an embedded error estimate (needed for adaptive steps).
    pub fn is_adaptive(&self) -> bool {
        self.b_error.is_some()
    }

    /// Checks the shapes and that the method is explicit. Called by the stepper.
    pub fn check(&self) -> Result<(), String> {
        let s = self.stages;
        if s == 0 {
            return Err(format!("tableau {}: zero stages", self.name));
        }
        if self.a.len() != s * s || self.b.len() != s || self.c.len() != s {
            return Err(format!(
                "tableau {}: expected a of length {}, b and c of length {s}; got {}, {}, {}",
                self.name,
                s * s,
                self.a.len(),
                self.b.len(),
                self.c.len()
            ));
        }
        if let Some(e) = self.b_error {
            if e.len() != s {
                return Err(format!(
                    "tableau {}: b_error must have length {s}",
                    self.name
                ));
            }
        }
        if let Some(d) = &self.dense {
            if d.coeffs.len() != s * d.degree {
                return Err(format!(
                    "tableau {}: dense coefficients must be stages x degree",
                    self.name
                ));
            }
        }
        for i in 0..s {
            for j in i..s {
                if self.a(i, j) != 0.0 {
                    return Err(format!(
                        "tableau {}: a[{i}][{j}] != 0; only explicit methods are supported",
                        self.name
                    ));
                }
            }
        }
        if self.fsal {
            let last = s - 1;
            let row_is_b = (0..s).all(|j| self.a(last, j) == self.b[j]);
            if !row_is_b || self.c[last] != 1.0 || self.b[last] != 0.0 {
                return Err(format!(
                    "tableau {}: FSAL needs the last row of a equal to b, c = 1, b_s = 0",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// Forward Euler: order 1, one stage, no error estimate (fixed steps only).
///
/// Dense output is linear interpolation between steps.
pub const EULER: ButcherTableau = ButcherTableau {
    name: "Euler",
    stages: 1,
    a: &[0.0],
    b: &[1.0],
    c: &[0.0],
    b_error: None,
    order: 1,
    error_order: None,
    fsal: false,
    dense: Some(DenseOutput {
        degree: 1,
        coeffs: &[1.0],
        order: 1,
    }),
};

/// Tsitouras' 5(4) pair: 7 stages, FSAL, order 5 with an embedded order-4 error estimate
/// and a free 4th-order continuous extension.
///
/// Ch. Tsitouras, "Runge–Kutta pairs of order 5(4) satisfying only the first column
/// simplifying assumption", *Computers & Mathematics with Applications* 62(2):770–775, 2011.
/// doi:10.1016/j.camwa.2011.06.002. The coefficients are the paper's, to full `f64`
/// precision; the interpolation polynomials are those of the paper's dense output, expanded
/// in powers of θ.
#[allow(clippy::excessive_precision)]
pub const TSIT5: ButcherTableau = ButcherTableau {
    name: "Tsit5",
    stages: 7,
    a: &[
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0, //
        0.161,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0, //
        -0.008_480_655_492_356_988_544_426_874_250_230_774_675_121,
        0.335_480_655_492_356_988_544_426_874_250_230_774_675_12,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0, //
        2.897_153_057_105_493_432_130_432_594_192_938_764_924_887,
        -6.359_448_489_975_074_843_148_159_912_383_825_625_952_701,
        4.362_295_432_869_581_411_017_727_318_190_886_861_027_813,
        0.0,
        0.0,
        0.0,
        0.0, //
        5.325_864_828_439_256_604_428_877_920_840_511_317_836_476,
        -11.748_883_564_062_827_877_747_170_339_785_772_961_887_44,
        7.495_539_342_889_836_208_304_604_784_564_358_155_658_679,
        -0.092_495_066_361_755_249_256_502_079_332_071_916_113_499_83,
        0.0,
        0.0,
        0.0, //
        5.861_455_442_946_420_028_659_251_486_982_647_890_394_338,
        -12.920_969_317_847_109_291_706_118_681_783_359_395_417_81,
        8.159_367_898_576_158_643_180_400_794_539_253_485_181_918,
        -0.071_584_973_281_400_997_224_530_542_525_829_738_691_272_13,
        -0.028_269_050_394_068_382_909_003_057_212_712_241_467_176_34,
        0.0,
        0.0, //
        0.096_460_766_818_065_229_518_167_313_165_128_763_337_119_95,
        0.01,
        0.479_889_650_414_499_574_775_249_532_290_596_519_913_040_5,
        1.379_008_574_103_741_893_192_274_821_856_872_770_756_463,
        -3.290_069_515_436_080_679_901_047_585_711_363_850_115_683,
        2.324_710_524_099_773_982_415_355_918_398_765_796_109_06,
        0.0,
    ],
    b: &[
        0.096_460_766_818_065_229_518_167_313_165_128_763_337_119_95,
        0.01,
        0.479_889_650_414_499_574_775_249_532_290_596_519_913_040_5,
        1.379_008_574_103_741_893_192_274_821_856_872_770_756_463,
        -3.290_069_515_436_080_679_901_047_585_711_363_850_115_683,
        2.324_710_524_099_773_982_415_355_918_398_765_796_109_06,
        0.0,
    ],
    c: &[
        0.0,
        0.161,
        0.327,
        0.9,
        0.980_025_540_904_509_685_729_810_286_287_024_595_494_213_8,
        1.0,
        1.0,
    ],
    // b - b̂, with b̂ = (0.0946807557658394580747887625575892285611752735772,
    // 0.00918356554034325309677636393664531375981374624098, 0.48777052842476157078556425996,
    // 1.23429756693047898565510967388, -2.70771234998352545488110997506,
    // 1.86662841817058703575371939957, 1/66).
    b_error: Some(&[
        0.00178001105222577144337855060753953477594467880,
        0.000816434459656746903223636063354686240186253759,
        -0.00788087801026199601031472767252630423862873378,
        0.144711007173262907537165147972635116720922712,
        -0.582357165452555225019937610652042179426078124,
        0.458082105929186946661636518832554297442804728,
        -0.0151515151515151515151515151515151515151515152,
    ]),
    order: 5,
    error_order: Some(4),
    fsal: true,
    dense: Some(DenseOutput {
        degree: 4,
        coeffs: &[
            1.0,
            -2.763_706_197_274_825_804_3,
            2.913_255_461_821_912_639_66,
            -1.053_088_497_729_021_577_6,
            //
            0.0,
            0.1317,
            -0.2234,
            0.1017,
            //
            0.0,
            3.930_296_236_894_751_604_75,
            -5.941_033_872_131_504_800_51,
            2.490_627_285_651_252_798,
            //
            0.0,
            -12.411_077_166_933_676_352_3,
            30.338_188_630_282_321_156_5,
            -16.548_102_889_244_901_803_1,
            //
            0.0,
            37.509_313_416_511_041_339_2,
            -88.178_904_894_766_404_254_4,
            47.379_521_962_819_282_521_2,
            //
            0.0,
            -27.896_526_289_197_286_274_7,
            65.091_894_674_793_664_421_5,
            -34.870_657_861_496_610_507_9,
            //
            0.0,
            1.5,
            -4.0,
            2.5,
        ],
        order: 4,
    }),
};
