// TandemNBD serves volumes over the NBD protocol on TandemIO's event loop.
import TandemIO
