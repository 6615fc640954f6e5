"""htmengine error codes (the original module's names and values); 0 is success.

This is the one source of truth: the model swapper's `ModelSwapperStatus` enum
(`htmengine.model_swapper.errors`) takes its values from here, and the codes travel in the
``status`` field of model command and inference results.
"""

SUCCESS = 0
"""Operation was successfully completed"""

ERR = 1
"""Generic error"""

ERR_MODEL_ALREADY_EXISTS = 2
"""Attempted to create a model that already exists"""

ERR_NO_SUCH_MODEL = 3
"""Attempted to perform an operation on a model that doesn't exist"""

ERR_INVALID_ARG = 4
"""Invalid argument in request"""

ERR_ROW_FAILED = 5
"""The model failed on one input row (not in the original): only that row has no score; the
model and its metric go on with the next rows"""
