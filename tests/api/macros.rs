//! The macros the test modules share.

/// Declares each contract test once per backend: `standalone::<name>` and
/// `distributed::<name>`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name(kairos::config::Backend::Standalone).await;
                }
            )*
        }
        mod distributed {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name(kairos::config::Backend::Distributed).await;
                }
            )*
        }
    };
}
